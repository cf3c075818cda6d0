package state

// governance runs operation name of the governance contract (abi/Governance.json).
func (x *exec) governance(name string, args []any) ([]any, error) {
	return nil, revertf("governance is not open yet: %s is not available", name)
}
