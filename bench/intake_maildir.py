"""Writes the intake benchmark's input: a campaign state folder whose journal says N
recipients were sent, and a Maildir of N messages that come back for them, in the mix a
real bounce mailbox has (mostly RFC 3464 DSNs, some plain-text Exim bounces, complaints,
replies, and forged DSNs for nobody the campaign sent to).

usage: intake_maildir.py DIR CAMPAIGN_ID DOMAIN N

The Message-IDs are mailshot's (src/message/build.rs: 96 bits of SHA-256 over the purpose,
the campaign and the lowercase address), so the bounces match as real ones would.
"""
import hashlib
import os
import sys

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "intake")


def message_id(campaign, domain, address):
    h = hashlib.sha256(f"message-id\0{campaign}\0{address.lower()}".encode()).hexdigest()[:24]
    return f"{campaign}.{h}@{domain}"


def main():
    out, campaign, domain, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    templates = {}
    for name in ["rfc3464-failed.eml", "rfc3464-delayed.eml", "exim-failed.eml", "arf-abuse.eml", "forged-dsn.eml"]:
        with open(os.path.join(FIXTURES, name)) as f:
            templates[name] = f.read()
    reply = "From: {rcpt}\nTo: news@{domain}\nSubject: Re: Hello\nMessage-ID: <r{i}@example.com>\n\nThanks, {i}\n"
    # Of every 20 messages: 12 hard DSNs, 3 delayed, 2 Exim, 1 complaint, 1 reply, 1 forged.
    plan = ["rfc3464-failed.eml"] * 12 + ["rfc3464-delayed.eml"] * 3 + ["exim-failed.eml"] * 2 + ["arf-abuse.eml", "reply", "forged-dsn.eml"]
    state = os.path.join(out, "state", campaign)
    os.makedirs(state, exist_ok=True)
    box = os.path.join(out, "Maildir")
    for sub in ["cur", "new", "tmp"]:
        os.makedirs(os.path.join(box, sub), exist_ok=True)
    with open(os.path.join(state, "journal"), "w") as j:
        j.write("mailshot-journal 1\tbench\n")
        for i in range(n):
            j.write(f"S\t{i + 2}\tr{i}@example.com\t250\tok\n")
    for i in range(n):
        rcpt = f"r{i}@example.com"
        kind = plan[i % len(plan)]
        if kind == "reply":
            text = reply.format(rcpt=rcpt, domain=domain, i=i)
        else:
            who = f"nobody{i}@example.com" if kind == "forged-dsn.eml" else rcpt
            text = templates[kind].replace("@@RCPT@@", who).replace("@@MSGID@@", message_id(campaign, domain, rcpt))
            # Each message distinct, as real bounces are (the ledger keys on the bytes).
            text = text.replace("Subject:", f"X-Bench-Seq: {i}\nSubject:", 1)
        with open(os.path.join(box, "new", f"{1795600000 + i}.M{i}P1.bench"), "w") as f:
            f.write(text)
    with open(os.path.join(out, "campaign.toml"), "w") as f:
        f.write(f"""[campaign]
id = "{campaign}"
from = "News <news@{domain}>"
subject = "Hello"
state_dir = "state"

[templates]
text = "unused.txt.hbs"

[recipients]
file = "unused.csv"

[[dkim]]
domain = "{domain}"
selector = "unused"
private_key = "unused.pem"

[outbox]
dir = "outbox"

[suppression]
file = "suppressed.txt"
""")
    open(os.path.join(out, "suppressed.txt"), "w").close()


main()
