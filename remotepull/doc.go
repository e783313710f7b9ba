// Package remotepull is the remote_pull endpoint for maddy: it fetches mail
// from IMAP and POP3 accounts elsewhere and hands every message to maddy's
// delivery pipeline in process.
//
// The flow, one folder per step:
//
//	config/    remote_pull blocks → account settings (file:line errors)
//	account/   one account's poll loop
//	source/    the upstreams: IMAP (imapsrc) and POP3 (pop3src)
//	delivery/  a message into maddy's pipeline
//	ledger/    what became of every upstream message, durably
//
// Upstream disposal (flag, expunge, DELE) happens in account/, and only for
// messages that maddy committed and the ledger recorded.
package remotepull
