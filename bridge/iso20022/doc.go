// Package iso20022 is the message layer of the Tally bank bridge: it parses
// and writes the ISO 20022 messages exchanged with a bank's core system,
// in exactly one pinned version each.
//
// # The messages
//
//   - camt.054.001.08 BankToCustomerDebitCreditNotification (Notification):
//     the bank core notifies individual bookings on the omnibus account as
//     they happen. A credit is a customer deposit: its entry reference
//     (Entry.Ref, the bank's AcctSvcrRef) becomes the bankRef of the mint,
//     which makes a notification delivered twice mint once. A debit is a
//     payout the bank executed. The bridge parses these
//     (ParseCamt054); the bank core simulator writes them (WriteCamt054).
//
//   - camt.053.001.08 BankToCustomerStatement (Statement): the periodic
//     statement of the omnibus account, with opening and closing balances
//     and every entry of the period. It is the authority for
//     reconciliation: the closing booked balance must match the ledger's
//     supply, and every entry must match a mint or a burn.
//
//   - pain.001.001.09 CustomerCreditTransferInitiation (PaymentOrder): the
//     bridge's payout orders, one per withdrawal, built with NewPayout so
//     that MsgId, PmtInfId and EndToEndId derive from the withdrawal id
//     (PayoutIDs) and the bank deduplicates a resent order. The bridge
//     writes them (WritePain001); the simulator parses them.
//
//   - pain.002.001.10 CustomerPaymentStatusReport (StatusReport): the bank's
//     verdict on a pain.001 - accepted (ACCP), settled (ACSC), rejected
//     (RJCT with a reason code and text) - per original message, payment
//     instruction and EndToEndId (StatusReport.StatusOf). The bridge parses
//     them (ParsePain002); the simulator builds them with NewStatusReport and
//     writes them (WritePain002).
//
//   - pacs.004.001.10 PaymentReturn (PaymentReturn): a bank sends back a
//     payment it received (closed account, ...), naming the original by its
//     EndToEndId, InstrId and UETR, with the amount that came back and an
//     ExternalReturnReason1Code. A bank core forwards it to the bridge,
//     which reads it as the return of a payout (ParsePacs004); the
//     simulator returns payouts as camt.054 credits with RtrInf
//     (TxDetail.Return) instead, which the bridge reads the same way.
//
// Identifiers of the bank's references are validated where they have a
// check: IBANs (CheckIBAN) and ISO 11649 creditor references
// (CheckCreditorReference) with their mod-97 check digits. Date-times must
// carry a zone offset: a local time is refused, not guessed.
//
// # Versions and safety
//
// Element names and structure differ between versions of the same message,
// so Detect reads the root namespace
// (urn:iso:std:iso:20022:tech:xsd:<version>) and every parser refuses
// another version with a *VersionError (ErrUnsupportedVersion) naming both
// the version found and the one supported; non-ISO XML, DTDs, trailing
// content and inputs over MaxMessageSize are refused too, and entry counts
// are capped by MaxEntries and MaxTransactions.
//
// Amounts are exact decimal strings validated against the XSD facets of
// ActiveOrHistoricCurrencyAndAmount (at most 18 digits, 5 after the point,
// non-negative); a float64 never touches them. Currency codes are three
// upper-case letters; dates and date-times are ISO 8601.
//
// # Scope
//
// Each message is modelled by a subset of its XSD: the elements the bridge
// needs, in XSD order, with the XSD's cardinalities. Unmodelled elements in
// incoming messages are ignored; written messages contain only modelled
// elements and are valid against the XSDs, which testdata/xsd holds and the
// tests check every type and every written message against. Parsers and
// writers apply the same validation, so anything a parser returns can be
// written back, and anything written can be parsed.
//
// The root element must be the message's <Document>; messages wrapped in a
// business application header envelope must be unwrapped by the transport.
package iso20022
