package genesis

// iso4217Minor are the minor units (decimal places) of the ISO 4217
// currencies whose minor unit is not 2, from the ISO 4217 list (table A.1,
// amendment 178); every other code of the list has 2.
var iso4217Minor = map[string]uint8{
	// 0 decimal places
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	// 3 decimal places
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	// 4 decimal places
	"CLF": 4, "UYW": 4,
}

// iso4217Two are the ISO 4217 codes with 2 minor units (every active code
// not in iso4217Minor, funds and precious metals aside). A symbol in
// neither table is not a currency code, and its minor units default to its
// decimals.
var iso4217Two = map[string]bool{}

func init() {
	for _, c := range []string{
		"AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
		"BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
		"CDF", "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK",
		"DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
		"GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD",
		"KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD",
		"MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV",
		"MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP",
		"PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
		"SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
		"TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS", "VED", "VES",
		"WST", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
	} {
		iso4217Two[c] = true
	}
}

// DefaultMinorUnits is an asset's minor units when its genesis entry does
// not say: the ISO 4217 minor units of its symbol if the symbol is a
// currency code known here, else its decimals (every base unit is
// payable). Never more than decimals: an asset cannot express finer.
func DefaultMinorUnits(symbol string, decimals uint8) uint8 {
	m, ok := iso4217Minor[symbol]
	if !ok {
		if !iso4217Two[symbol] {
			return decimals
		}
		m = 2
	}
	return min(m, decimals)
}
