package state

// exchange runs operation name of the exchange contract (abi/Exchange.json).
func (x *exec) exchange(name string, args []any) ([]any, error) {
	return nil, revertf("the exchange is not open yet: %s is not available", name)
}
