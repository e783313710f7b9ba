#!/usr/bin/env python3
"""Writes the mbox fixtures of integration/fileimport_test.go with Python's
mailbox module, and what each message is expected to be (expected.json).

  mboxo.mbox    mailbox.mbox as Python writes it: "From " lines in bodies
                quoted as ">From ", ">From " lines left alone (mboxo).
  mboxrd.mbox   the same messages with mboxrd quoting (^>*From gets one
                more '>'), written through mailbox.mbox's own From lines,
                Status and X-Status fields.
  takeout.mbox  shaped as Google Takeout writes Gmail: From lines with the
                Gmail message ID at "xxx", X-GM-THRID and X-Gmail-Labels.
"""
import calendar
import json
import mailbox
import os
import re
import sys
import time

out = sys.argv[1]

def msg(subject, body):
    return ("From: Bob <bob@example.org>\nTo: alice@example.org\nSubject: %s\n"
            "Message-ID: <%s@example.org>\nDate: Mon, 2 Mar 2020 10:00:00 +0000\n\n%s"
            % (subject, subject.replace(" ", "."), body)).encode()

plain = [
    ("py plain", "Hello.\n", "RO", "", (2019, 1, 2, 3, 4, 5)),
    ("py from", "From the start.\n\nFrom after a blank line.\nend\n", "O", "AF", (2020, 6, 7, 8, 9, 10)),
    ("py unread", "Not read yet.\n", "", "", (2021, 1, 1, 0, 0, 0)),
]
# ">From " in the original: mboxo cannot tell it from a quoted "From ".
quoted_original = ("py quoted", "A line:\n>From me, quoted by hand.\n>>From deeper.\n", "RO", "", (2022, 2, 2, 2, 2, 2))

expected = {}

def flags(status, xstatus):
    f = []
    if "R" in status:
        f.append("\\Seen")
    if "A" in xstatus:
        f.append("\\Answered")
    if "F" in xstatus:
        f.append("\\Flagged")
    return f

def write(name, items, quote, read_back=lambda raw: raw):
    path = os.path.join(out, name)
    box = mailbox.mbox(path, create=True)
    box.lock()
    exp = []
    for subject, body, status, xstatus, date in items:
        subject = name.split(".")[0] + " " + subject
        raw = msg(subject, body)
        m = mailbox.mboxMessage(quote(raw))
        m.set_from("bob@example.org", time.gmtime(calendar.timegm(date + (0, 0, 0))))
        m.set_flags(status + xstatus)
        box.add(m)
        exp.append({"subject": subject, "raw": read_back(raw).decode(), "flags": flags(status, xstatus),
                    "date": "%04d-%02d-%02dT%02d:%02d:%02dZ" % date})
    box.flush()
    box.unlock()
    box.close()
    expected[name] = exp

# mboxo: Python's mailbox quotes "From " itself. Read back, ">From " is
# "From " (mboxo's known loss: an original ">From " line is not told
# from a quoted "From " one); ">>From " stays.
write("mboxo.mbox", plain + [quoted_original], lambda raw: raw,
      lambda raw: re.sub(rb"(?m)^>From ", b"From ", raw))
# mboxrd: quoted here, reversibly; Python's own quoting then finds no
# "From " line left to quote.
write("mboxrd.mbox", plain + [quoted_original],
      lambda raw: re.sub(rb"(?m)^(>*From )", rb">\1", raw))

# Takeout.
takeout = [
    ("1650281542658391234", "Inbox,Important,Starred,Opened,Category Personal", "to inbox", ["\\Flagged", "\\Seen"]),
    ("1650281542658391235", "Sent,Opened,\"Work, old\"", "sent", ["\\Seen"]),
    ("1650281542658391236", "Archived,Unread,Category Updates", "archived unread", []),
]
with open(os.path.join(out, "takeout.mbox"), "wb") as f:
    exp = []
    for gmid, labels, subject, fl in takeout:
        raw = msg(subject, "From a Takeout body.\nBye.\n")
        f.write(b"From %s@xxx Tue Aug 13 04:44:16 +0000 2019\n" % gmid.encode())
        f.write(b"X-GM-THRID: %s\nX-Gmail-Labels: %s\n" % (gmid.encode(), labels.encode()))
        f.write(re.sub(rb"(?m)^(>*From )", rb">\1", raw))
        f.write(b"\n")
        exp.append({"subject": subject, "raw": raw.decode(), "flags": fl, "date": "2019-08-13T04:44:16Z"})
    expected["takeout.mbox"] = exp

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
