#!/usr/bin/python3
"""A real SMTP server for the black-box tests: the daemon's outbound mail goes here.

Usage: smtp_relay.py --listen-port N --lmtp-port M --dir DIR [--tls-cert F --tls-key F]
                     [--require-auth USER:PASSWORD]

Every accepted message is kept as DIR/sent/<number>.eml (what the daemon sent, byte for
byte) and relayed over LMTP to the test's Dovecot, so it lands in the recipient's mailbox.
Recipients at reject.test are refused at RCPT with a permanent 550. With a certificate
and key it requires STARTTLS before MAIL, as a submission server does; with
--require-auth also AUTH (PLAIN or LOGIN) with that user and password. Prints "ready" once
listening; SIGTERM stops it.
"""

import argparse
import asyncio
import itertools
import os
import signal
import smtplib
import ssl
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Relay:
    def __init__(self, lmtp_port, sent_dir):
        self.lmtp_port = lmtp_port
        self.sent_dir = sent_dir
        # Continue the numbering of an earlier run on the same dir, so a restart does not
        # overwrite what was sent before it.
        taken = [int(p.stem) for p in sent_dir.glob("*.eml")]
        self.numbers = itertools.count(max(taken, default=0) + 1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A real permanent failure at RCPT time, for the daemon's 5xx handling.
        if address.rpartition("@")[2].lower() == "reject.test":
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        number = next(self.numbers)
        # Written under a temp name and renamed, so readers never see a partial file.
        temp = self.sent_dir / f".{number}.tmp"
        temp.write_bytes(envelope.original_content)
        os.rename(temp, self.sent_dir / f"{number:06}.eml")
        # smtplib blocks; keep the event loop free for other sessions.
        return await asyncio.get_running_loop().run_in_executor(None, self.relay, envelope)

    def relay(self, envelope):
        # One LMTP transaction per recipient: LMTP answers DATA once per recipient, while
        # smtplib reads only one reply, and SMTP can give only one back anyway.
        for rcpt in envelope.rcpt_tos:
            try:
                with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
                    lmtp.sendmail(envelope.mail_from, [rcpt], envelope.original_content)
            except smtplib.SMTPRecipientsRefused as refused:
                code, message = refused.recipients[rcpt]
                return f"{code} {message.decode()}"
            except smtplib.SMTPResponseException as error:
                return f"{error.smtp_code} {error.smtp_error.decode()}"
            except OSError as error:
                return f"451 4.4.1 LMTP unreachable: {error}"
        return "250 OK relayed"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--lmtp-port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--require-auth")
    args = parser.parse_args()
    tls = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        tls = {"tls_context": context, "require_starttls": True}
    if args.require_auth:
        user, password = args.require_auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, login):
            return AuthResult(success=(login.login.decode(), login.password.decode()) == (user, password))

        tls.update(authenticator=authenticator, auth_required=True, auth_require_tls=bool(args.tls_cert))
    sent_dir = args.dir / "sent"
    sent_dir.mkdir(parents=True, exist_ok=True)

    # Blocked before the server thread starts (it inherits the mask), so SIGTERM waits
    # for sigwait below and the server is stopped in order.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    controller = Controller(Relay(args.lmtp_port, sent_dir), hostname="127.0.0.1", port=args.listen_port, **tls)
    controller.start()  # returns once a test connection got the greeting
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
