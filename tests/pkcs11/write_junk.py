"""Write a certificate object whose CKA_VALUE is not a certificate (pkcs11-tool refuses to).

Usage: /usr/bin/python3 write_junk.py MODULE TOKEN_LABEL PIN_ENV   (PyKCS11: Debian python3-pykcs11)
The PIN comes from the environment variable named by the third argument, not argv.
"""
import os
import sys

import PyKCS11
from PyKCS11.LowLevel import (CKA_CERTIFICATE_TYPE, CKA_CLASS, CKA_ID, CKA_LABEL, CKA_SUBJECT,
                              CKA_TOKEN, CKA_VALUE, CKC_X_509, CKF_RW_SESSION,
                              CKF_SERIAL_SESSION, CKO_CERTIFICATE)

module, label, pin_env = sys.argv[1:4]
lib = PyKCS11.PyKCS11Lib()
lib.load(module)
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getTokenInfo(s).label.strip() == label)
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
session.login(os.environ[pin_env])
session.createObject([
    (CKA_CLASS, CKO_CERTIFICATE),
    (CKA_CERTIFICATE_TYPE, CKC_X_509),
    (CKA_TOKEN, True),
    (CKA_LABEL, "junk"),
    (CKA_ID, (0x03,)),
    (CKA_SUBJECT, (0x30, 0x00)),
    (CKA_VALUE, tuple(b"\x30\x82\x01\x00 this is not a certificate")),
])
session.logout()
