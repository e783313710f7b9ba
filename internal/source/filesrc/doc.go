// Package filesrc reads mail from files as an upstream: an mbox file
// (mboxo or mboxrd, LF or CRLF, Google Takeout's labels) or a Maildir tree
// (new/ and cur/, Maildir++ subfolders). The files are only ever read.
//
// A file source lists its whole mailbox at every poll (Complete) under
// identities no other message gets (source.StableIdentities): an mbox
// message is known by a hash of its bytes as delivered, found again by its
// position, which Fetch checks against the hash; a Maildir message by the
// unique part of its file name. An unchanged mbox is not read again: the
// listing is kept while the file's size, times and inode stay the same.
//
// Messages are delivered with CRLF line endings, as maddy stores them. An
// mbox message loses its From line, its From quoting, and the header
// fields that record its state in the mbox (Status, X-Status, X-Keywords,
// Dovecot's X-UID, X-IMAPbase and Content-Length, Takeout's X-Gmail-Labels
// and X-GM-THRID), which become flags and labels; nothing else changes.
package filesrc
