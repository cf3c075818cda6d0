package iso20022

import (
	"bytes"
	"strings"
	"testing"
)

func TestParsePacs004Return(t *testing.T) {
	p := pacs004Codec.rewriteStable(t, readTestdata(t, "pacs004_return.xml"))
	if p.MsgID != "BKBB-RTR-20261203-1" || p.SettlementMethod != SettlementClearingSystem || len(p.Returns) != 1 {
		t.Fatalf("return %+v", p)
	}
	r := p.Returns[0]
	if r.OriginalEndToEndID != "TALLY-1337-HKD-W42" || r.OriginalMsgID != "TALLY-1337-HKD-M42" || r.OriginalUETR == "" ||
		r.Amount != "50.00" || r.Currency != "HKD" || r.Reason.Reason != "AC04" || len(r.Reason.AdditionalInfo) != 1 {
		t.Fatalf("return %+v", r)
	}
}

func TestPacs004Refused(t *testing.T) {
	good := string(readTestdata(t, "pacs004_return.xml"))
	for name, bad := range map[string]string{
		"count":     strings.Replace(good, "<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>", 1),
		"no amount": strings.Replace(good, `<RtrdIntrBkSttlmAmt Ccy="HKD">50.00</RtrdIntrBkSttlmAmt>`, "", 1),
		"uetr":      strings.Replace(good, "<OrgnlUETR>", "<OrgnlUETR>x", 1),
		"method":    strings.Replace(good, "<SttlmMtd>CLRG</SttlmMtd>", "<SttlmMtd>XXXX</SttlmMtd>", 1),
		"no zone":   strings.Replace(good, "2026-12-03T10:00:00Z", "2026-12-03T10:00:00", 1),
		"version":   strings.ReplaceAll(good, "pacs.004.001.10", "pacs.004.001.09"),
	} {
		if bad == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := ParsePacs004(bytes.NewReader([]byte(bad))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
