#!/usr/bin/python3
"""A real SMTP server for the email notifier's tests (tests/it/notify.rs).

aiosmtpd's command line has no AUTH, and aiosmtpd allows AUTH only over TLS, so this small
script runs its Controller with STARTTLS (the test's own certificate, required before anything
else) and AUTH (one user and password, required). Every accepted message is parsed with Python's
email package and written as JSON to OUT_DIR/N.json: envelope sender and recipients, the login
that sent it, and the parsed Subject, From, To, content type and body. Prints "READY" once it
accepts connections; stops when its stdin closes.

usage: smtp_server.py PORT CERT KEY USER PASSWORD OUT_DIR
"""

import email
import email.policy
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password, out_dir = sys.argv[1:7]
counter = itertools.count()


class Handler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data.login.decode() if session.auth_data else None,
            "tls": session.ssl is not None,
            "subject": str(message["Subject"]),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "content_type": message.get_content_type(),
            "body": message.get_content(),
        }
        path = os.path.join(out_dir, f"{next(counter)}.json")
        with open(path + ".tmp", "w") as out:
            json.dump(record, out)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=context,
    require_starttls=True,
    auth_required=True,
    auth_require_tls=True,
    authenticator=authenticator,
)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
