#!/usr/bin/env python3
"""Self-test of spdm_responder.py, the SPDM responder behind the DOE CMA
mailbox of the project's QEMU test devices: a minimal SPDM requester that
talks to it over the same socket and DOE framing as QEMU and checks what
a kernel requester (Linux lib/spdm) checks -- version, capabilities,
algorithms, that DIGESTS matches the chain, that the chain leads to the
trusted root (signatures, CA flags, key usage, the CMA Subject Alternative
Name, and the validity dates Linux does not check), the CHALLENGE_AUTH
signature over the transcript and the MEASUREMENTS signature.

For each key type it starts a responder (a subprocess, "serve --port 0")
per behaviour: "good" must authenticate, every misbehaviour must be
rejected for its reason.  Prints TAP; the last line counts the results.

    /usr/bin/python3 tests/host/spdm_check.py [KEY_TYPE...]
"""
import datetime
import os
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spdm_responder as R  # noqa: E402
from tap import Reporter  # noqa: E402

RESPONDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "spdm_responder.py")
CHUNK = 1024                    # GET_CERTIFICATE Length: the chain comes in portions
EXPECTED = {"bad-signature": "signature", "untrusted-root": "untrusted",
            "expired": "expired", "malformed-cert": "parse",
            "wrong-nonce": "signature(nonce)", "truncated": "truncated",
            "oversized": "oversized", "bad-version": "version", "silent": "timeout"}
MEASURED_TOO = ("bad-signature", "wrong-nonce")     # MEASUREMENTS are signed too
# Well-behaved devices that need the requester to retry: they authenticate,
# and the requester saw what it retried
RETRIED = {"busy": "busy", "not-ready": "not-ready"}
BUSY_RETRIES, BUSY_DELAY = 3, 0.01
NOT_READY_RETRIES, MAX_RDT_EXPONENT = 3, 23


class Fail(Exception):
    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def need(cond, reason, detail=""):
    if not cond:
        raise Fail(reason, detail)


# -- certificate chain (by hand: cryptography 38 has no path validation) -------
def der_header(data, i):
    """(header length, content length) of the DER element at data[i]."""
    need(i + 2 <= len(data), "parse", f"no DER element at offset {i}")
    size, head = data[i + 1], 2
    if size & 0x80:
        n = size & 0x7F
        need(1 <= n <= 4 and i + 2 + n <= len(data), "parse", f"bad DER length at offset {i}")
        size, head = int.from_bytes(data[i + 2:i + 2 + n], "big"), 2 + n
    return head, size


def split_certificates(data):
    """The DER certificates in `data`, delimited by their outer SEQUENCE
    (as Linux's x509_get_certificate_length() does)."""
    ders, i = [], 0
    while i < len(data):
        head, size = der_header(data, i)
        need(data[i] == 0x30 and i + head + size <= len(data), "parse",
             f"no certificate at offset {i}")
        ders.append(data[i:i + head + size])
        i += head + size
    return ders


def load(der, i):
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise Fail("parse", f"certificate {i}: {e}")


def signed_by(cert, issuer):
    key, algorithm = issuer.public_key(), cert.signature_hash_algorithm
    scheme = ((padding.PKCS1v15(), algorithm) if isinstance(key, rsa.RSAPublicKey)
              else (ec.ECDSA(algorithm),))
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, *scheme)
        return cert.issuer == issuer.subject
    except InvalidSignature:
        return False


def validity(cert):
    if hasattr(cert, "not_valid_before_utc"):       # cryptography 42 and later
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    utc = datetime.timezone.utc
    return cert.not_valid_before.replace(tzinfo=utc), cert.not_valid_after.replace(tzinfo=utc)


def extension(cert, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def check_usage(cert, i, leaf):
    """BasicConstraints CA false for the leaf only, and the leaf's Key
    Usage digitalSignature without keyCertSign (DSP0274 1.3 table 42,
    Linux spdm_validate_cert_chain())."""
    constraints, usage = extension(cert, x509.BasicConstraints), extension(cert, x509.KeyUsage)
    need(bool(constraints and constraints.ca) != leaf, "ca",
         f"certificate {i}: BasicConstraints {constraints}")
    need(not leaf or (usage and usage.digital_signature and not usage.key_cert_sign), "ca",
         f"leaf Key Usage {usage}")


def cma_name(cert):
    """The UTF8String of the leaf's OtherName with the CMA OID 2.23.147."""
    names = extension(cert, x509.SubjectAlternativeName)
    for other in names.get_values_for_type(x509.OtherName) if names else ():
        if other.type_id == R.OID_CMA and other.value[:1] == b"\x0c":
            head, size = der_header(other.value, 0)
            return other.value[head:head + size].decode()
    return None


def key_type(key):
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name)


def validate_chain(chain, chain_digest, hash_, root_der, asym, san=R.DEFAULT_SAN):
    """The leaf's public key, once the SPDM certificate chain `chain` is
    found to lead from the trusted root `root_der` to a device leaf."""
    size = hash_.size
    need(len(chain) > 4 + size and struct.unpack_from("<H", chain)[0] == len(chain),
         "chain", "Length is not the chain's length")
    need(R.digest(hash_, chain) == chain_digest, "digest", "DIGESTS is not the chain's hash")
    ders = split_certificates(chain[4 + size:])
    need(R.digest(hash_, ders[0]) == chain[4:4 + size], "chain", "RootHash is not the first's")
    certs = [load(der, i) for i, der in enumerate(ders)]
    root = x509.load_der_x509_certificate(root_der)
    need(ders[0] == root_der or signed_by(certs[0], root), "untrusted",
         f"first certificate ({certs[0].issuer.rfc4514_string()}) is not from the trusted root")
    now = datetime.datetime.now(datetime.timezone.utc)
    for i, cert in enumerate(certs):
        need(i == 0 or signed_by(cert, certs[i - 1]), "signature",
             f"certificate {i} is not signed by certificate {i - 1}")
        start, end = validity(cert)
        need(start <= now <= end, "expired", f"certificate {i} is valid from {start} to {end}")
        check_usage(cert, i, i == len(certs) - 1)
    need(cma_name(certs[-1]) == san, "san", f"leaf CMA name {cma_name(certs[-1])!r}")
    need(key_type(certs[-1].public_key()) == asym.name, "key", f"leaf key is not {asym.name}")
    return certs[-1].public_key()


# -- the requester --------------------------------------------------------------
class SocketTransport:
    """The responder's socket, used as QEMU's SPDM socket backend uses it."""

    def __init__(self, address, timeout=5.0):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        else:
            self.sock = socket.create_connection(address, timeout)

    def xfer(self, req, obj):
        """The DOE object answering `obj` (which carries SPDM request `req`)."""
        try:
            R.send_platform(self.sock, R.CMD_NORMAL, R.TRANSPORT_PCI_DOE, obj)
            got = R.recv_platform(self.sock, R.SOCKET_MAX_PAYLOAD)
        except OverflowError as e:
            raise Fail("oversized", f"answer to {R.describe(req)}: {e}")
        except OSError as e:            # socket.timeout included
            raise Fail("timeout", f"no answer to {R.describe(req)}: {e}")
        need(got is not None, "timeout", f"connection closed without an answer to "
             f"{R.describe(req)} (a DOE mailbox would never be ready)")
        return got[2]

    def close(self):
        self.sock.close()


class Requester:
    """One connection's requester, transcripts kept as Linux lib/spdm keeps
    them; every step raises Fail with the reason it rejects the responder.
    `transport`: a SocketTransport, or anything with xfer(req, obj) and
    close() (tests/host/cma.py: a device's DOE mailbox, from the guest)."""

    def __init__(self, transport, root_der, versions=(0x12, 0x13), hash_bits=0x03,
                 chunk=CHUNK):
        self.transport = transport
        self.root_der, self.versions, self.hash_bits = root_der, versions, hash_bits
        self.chunk = chunk
        self.version, self.max_msg, self.chunks, self.blocks = 0x10, R.SPDM_MAX, 0, {}
        self.hash = self.asym = None
        self.vca = self.auth_log = self.meas_log = b""
        self.retries = {}

    def close(self):
        self.transport.close()

    def exchange(self, req):
        """Send `req` and return its response, retrying what Linux's
        spdm_exchange() retries: Busy (up to BUSY_RETRIES times) and
        ResponseNotReady (RESPOND_IF_READY once the device's RDT has passed,
        up to NOT_READY_RETRIES times)."""
        msg, busy, not_ready = req, 0, 0
        while True:
            rsp = self.transfer(msg, req)
            if rsp[1] == R.ERROR and rsp[0] == req[0] and rsp[2] == R.BUSY \
                    and busy < BUSY_RETRIES:
                busy += 1
                self.retries["busy"] = self.retries.get("busy", 0) + 1
                time.sleep(BUSY_DELAY)
                continue
            if rsp[1] == R.ERROR and rsp[0] == req[0] and rsp[2] == R.RESPONSE_NOT_READY \
                    and len(rsp) >= 8 and not_ready < NOT_READY_RETRIES:
                exponent, code, token = rsp[4], rsp[5], rsp[6]
                need(code == req[1] and exponent <= MAX_RDT_EXPONENT, "protocol",
                     f"ResponseNotReady for {code:#04x}, RDTExponent {exponent}")
                not_ready += 1
                self.retries["not-ready"] = self.retries.get("not-ready", 0) + 1
                time.sleep((1 << exponent) / 1e6)
                msg = bytes([req[0], R.RESPOND_IF_READY, code, token])
                continue
            break
        if rsp[1] == R.ERROR:
            raise Fail("error " + R.ERROR_NAMES.get(rsp[2], hex(rsp[2])), R.describe(rsp))
        need(rsp[1] == req[1] & 0x7F and rsp[0] == req[0], "protocol",
             f"{R.describe(rsp)} answers {R.describe(req)}")
        return rsp

    def transfer(self, msg, req):
        got = self.transport.xfer(req, R.doe_wrap(msg))
        try:
            rsp = R.doe_unwrap(got)[2]
        except ValueError as e:
            raise Fail("framing", str(e))
        need(len(rsp) <= self.max_msg, "oversized",
             f"{R.describe(rsp)}: more than our DataTransferSize {self.max_msg}")
        need(len(rsp) >= 4, "truncated", f"{len(rsp)}-byte answer to {R.describe(req)}")
        return rsp

    def context(self):
        return secrets.token_bytes(8) if self.version >= 0x13 else b""   # RequesterContext

    # VCA: GET_VERSION, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS
    def negotiate(self):
        req = bytes([0x10, R.GET_VERSION, 0, 0])
        rsp = self.exchange(req)
        need(len(rsp) >= 6 + 2 * rsp[5], "truncated", R.describe(rsp))
        rsp = rsp[:6 + 2 * rsp[5]]
        offered = {v >> 8 for v in struct.unpack_from(f"<{rsp[5]}H", rsp, 6)}
        need(offered & set(self.versions), "version",
             f"no common version: responder offers {sorted(map(hex, offered))}")
        self.version = max(offered & set(self.versions))
        self.vca = req + rsp
        self.capabilities()
        self.algorithms()

    def capabilities(self):
        req = struct.pack("<BBBBBBHIII", self.version, R.GET_CAPABILITIES, 0, 0, 0, 20, 0,
                          R.CERT_CAP | R.CHAL_CAP, self.max_msg, self.max_msg)
        rsp = self.exchange(req)[:20]
        need(len(rsp) == 20, "truncated", R.describe(rsp))
        self.caps, transfer = struct.unpack_from("<II", rsp, 8)
        need(self.caps & (R.CERT_CAP | R.CHAL_CAP) == R.CERT_CAP | R.CHAL_CAP, "capabilities",
             f"flags {self.caps:#x} lack CERT_CAP or CHAL_CAP")
        need(transfer >= R.MIN_DATA_TRANSFER_SIZE, "capabilities", f"DataTransferSize {transfer}")
        self.vca += req + rsp

    def algorithms(self):
        asym_bits = sum(a.bit for a in R.ASYMS.values())
        req = struct.pack("<BBBBHBBII12xBBxB", self.version, R.NEGOTIATE_ALGORITHMS, 0, 0,
                          32, R.MEAS_SPEC_DMTF, 0x02, asym_bits, self.hash_bits, 0, 0, 0)
        rsp = self.exchange(req)
        need(len(rsp) >= 36, "truncated", R.describe(rsp))
        length, spec, other, meas_hash, asym, hash_bit = struct.unpack_from("<HBBIII", rsp, 4)
        rsp = rsp[:length]
        need(asym in R.ASYM_BY_BIT and hash_bit & self.hash_bits and hash_bit in R.HASHES
             and other == 0x02 and rsp[2] == 0 and rsp[32:34] == b"\0\0", "algorithms",
             f"selected asym {asym:#x} hash {hash_bit:#x} other {other:#x}")
        need(not self.caps & R.MEAS_CAP_MASK or (spec == R.MEAS_SPEC_DMTF
             and meas_hash == R.HASHES[hash_bit].meas_bit), "algorithms",
             f"measurement specification {spec:#x}, hash {meas_hash:#x}")
        self.asym, self.hash = R.ASYM_BY_BIT[asym], R.HASHES[hash_bit]
        self.vca += req + rsp

    # GET_DIGESTS, GET_CERTIFICATE (slot 0), then the chain's validation
    def identify(self):
        req = bytes([self.version, R.GET_DIGESTS, 0, 0])
        rsp = self.exchange(req)
        count = bin(rsp[3]).count("1")
        need(rsp[3] & 1, "digests", "slot 0 is not provisioned")
        need(len(rsp) >= 4 + count * self.hash.size, "truncated", R.describe(rsp))
        rsp = rsp[:4 + count * self.hash.size]
        self.auth_log += req + rsp
        self.chain = self.certificate()
        self.leaf = validate_chain(self.chain, rsp[4:4 + self.hash.size], self.hash,
                                   self.root_der, self.asym)

    def certificate(self):
        chain, remainder, total = b"", None, None
        while remainder != 0:
            req = struct.pack("<BBBBHH", self.version, R.GET_CERTIFICATE, 0, 0, len(chain),
                              self.chunk)
            rsp = self.exchange(req)
            portion, remainder = struct.unpack_from("<HH", rsp, 4) if len(rsp) >= 8 else (0, 0)
            need(len(rsp) >= 8 + portion, "truncated", R.describe(rsp))
            need(portion and rsp[2] & 0x0F == 0, "certificate", R.describe(rsp))
            total = portion + remainder if total is None else total
            need(len(chain) + portion + remainder == total, "certificate", "lengths disagree")
            rsp = rsp[:8 + portion]
            chain, self.chunks = chain + rsp[8:], self.chunks + 1
            self.auth_log += req + rsp
        return chain

    def split_signed(self, rsp, opaque_at, context, signed=True):
        """(response up to the Signature, Signature) of a CHALLENGE_AUTH or
        MEASUREMENTS whose OpaqueDataLength is at `opaque_at`."""
        need(len(rsp) >= opaque_at + 2, "truncated", R.describe(rsp))
        end = opaque_at + 2 + struct.unpack_from("<H", rsp, opaque_at)[0] + len(context)
        siglen = self.asym.siglen if signed else 0
        need(len(rsp) >= end + siglen, "truncated",
             f"{R.describe(rsp)}, {end + siglen} bytes expected")
        need(rsp[end - len(context):end] == context, "context", "RequesterContext not echoed")
        return rsp[:end], rsp[end:end + siglen]

    def verify(self, sig, before, req, body, context):
        """The signature over before || req || body; on failure, whether it
        is one over the request with its nonce inverted (wrong-nonce)."""
        def signed(request):
            return R.spdm_verify(self.leaf, self.hash, self.version, context,
                                 before + request + body, sig)
        if signed(req):
            return
        other = signed(req[:4] + bytes(b ^ 0xFF for b in req[4:36]) + req[36:])
        raise Fail("signature(nonce)" if other else "signature",
                   f"{R.describe(body)}: signature does not verify" +
                   (" (it does over another nonce)" if other else ""))

    def challenge(self):
        context = self.context()
        req = bytes([self.version, R.CHALLENGE, 0, 0]) + secrets.token_bytes(32) + context
        rsp = self.exchange(req)
        body, sig = self.split_signed(rsp, 4 + self.hash.size + 32, context)
        need(rsp[4:4 + self.hash.size] == R.digest(self.hash, self.chain), "digest",
             "CertChainHash is not slot 0's")
        self.verify(sig, self.vca + self.auth_log, req, body, R.CHALLENGE_CONTEXT)

    def measurements(self):
        """GET_MEASUREMENTS of the number of blocks, unsigned, then of all of
        them, signed over L1 = VCA and both exchanges."""
        req = bytes([self.version, R.GET_MEASUREMENTS, 0, 0]) + self.context()
        rsp = self.exchange(req)
        body = self.split_measurements(rsp, req[4:], False)[0]
        self.meas_log, total = req + body, rsp[2]
        req = bytes([self.version, R.GET_MEASUREMENTS, 1, 0xFF]) + secrets.token_bytes(32)
        req += b"\0" + self.context()
        body, sig = self.split_measurements(self.exchange(req), req[37:], True)
        need(len(self.blocks) == total > 0, "measurements",
             f"{len(self.blocks)} blocks of {total}")
        self.verify(sig, self.vca + self.meas_log, req, body, R.MEASUREMENTS_CONTEXT)

    def split_measurements(self, rsp, context, signed):
        need(len(rsp) >= 8, "truncated", R.describe(rsp))
        record = int.from_bytes(rsp[5:8], "little")
        body, sig = self.split_signed(rsp, 8 + record + 32, context, signed)
        self.blocks, i = {}, 8
        while i < 8 + record:   # measurement blocks, DSP0274 1.2 sec 10.11.1
            need(i + 7 <= 8 + record, "measurements", "measurement record overrun")
            index, spec, size, kind, value = struct.unpack_from("<BBHBH", rsp, i)
            need(spec == R.MEAS_SPEC_DMTF and size == 3 + value and i + 4 + size <= 8 + record
                 and (kind & 0x80 or value == self.hash.size), "measurements",
                 f"block {index} is malformed")
            self.blocks[index] = rsp[i + 7:i + 4 + size]
            i += 4 + size
        need(len(self.blocks) == rsp[4], "measurements", f"NumberOfBlocks {rsp[4]}")
        return body, sig


def authenticate(req):
    """What Linux's spdm_authenticate() does."""
    req.negotiate()
    req.identify()
    req.challenge()


def measure(req):
    req.negotiate()
    req.identify()
    req.measurements()


# -- the self-test ----------------------------------------------------------------
class Responder:
    """spdm_responder.py serve in a subprocess; its log kept for diagnostics."""

    def __init__(self, certs, key, behave="good", versions="1.2,1.3", unix=None, extra=()):
        self.log = tempfile.TemporaryFile(mode="w+")
        where = ["--unix", unix] if unix else ["--port", "0"]
        self.proc = subprocess.Popen(
            [sys.executable, RESPONDER, "serve", "--certs", certs, "--key", key, "--behave",
             behave, "--versions", versions, "--verbose", *where, *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.proc.stdout.readline().split()
        if len(first) != 2:
            self.close()
            raise RuntimeError(f"responder did not start: {first}")
        self.address = unix or ("127.0.0.1", int(first[1]))
        self.root_der = R._read(os.path.join(certs, "root.der"))

    def tail(self):
        self.log.seek(0)
        return "".join(self.log.readlines()[-12:])

    def text(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()


def run(certs, key, behave, flow, versions="1.2,1.3", unix=None, **options):
    """(Fail or None, the requester, the responder's log) of `flow`."""
    responder = Responder(certs, key, behave, versions, unix)
    try:
        req = Requester(SocketTransport(responder.address), responder.root_der, **options)
        try:
            flow(req)
            fail = None
        except Fail as e:
            fail = e
        req.close()
        return fail, req, f"{fail}\nresponder:\n{responder.tail()}"
    finally:
        responder.close()


def reason(fn):
    try:
        fn()
        return None
    except Fail as e:
        return e.reason


def negotiated(req):
    return req.version, req.hash and req.hash.name, req.asym and req.asym.name


def check_good(t, certs, key):
    fail, req, log = run(certs, key, "good", authenticate)
    t.ok(fail is None, f"{key} good: authenticated (chain to the trusted root, "
         "CHALLENGE_AUTH signature over VCA, digests, certificates and CHALLENGE)", log)
    t.eq(negotiated(req), (0x13, "sha384", key),
         f"{key} good: SPDM 1.3, SHA-384 chosen of SHA-256 and SHA-384, {key}", log)
    t.ok(req.chunks > 1, f"{key} good: chain read in {req.chunks} portions of {CHUNK} bytes")
    fail, req, log = run(certs, key, "good", measure)
    t.ok(fail is None and req.blocks.get(4) == b"1.0.0",
         f"{key} good: signed MEASUREMENTS verified ({len(req.blocks)} blocks)", log)
    fail, req, log = run(certs, key, "good", authenticate, versions="1.2", hash_bits=0x01,
                         chunk=0xFFFF)
    t.ok(fail is None and negotiated(req)[:2] == (0x12, "sha256") and req.chunks == 1,
         f"{key} good, --versions 1.2, SHA-256 offered, GET_CERTIFICATE Length 0xffff "
         "as Linux asks: authenticated with 1.2 and SHA-256, the chain in one portion", log)


def check_misbehaviour(t, certs, key, behave):
    for flow in (authenticate, measure) if behave in MEASURED_TOO else (authenticate,):
        fail, _, log = run(certs, key, behave, flow)
        t.eq(fail.reason if fail else "authenticated", EXPECTED[behave],
             f"{key} {behave}: {flow.__name__} rejected ({EXPECTED[behave]})", log)


def check_retried(t, certs, key, behave):
    """A device that answers Busy or ResponseNotReady authenticates, with
    its measurements, once the requester retries as DSP0274 says."""
    for flow in (authenticate, measure):
        fail, req, log = run(certs, key, behave, flow)
        t.ok(fail is None and req.retries.get(RETRIED[behave], 0) > 0,
             f"{key} {behave}: {flow.__name__} succeeds after retrying",
             f"retries {req.retries}\n{log}")


def check_signing_message(t):
    """Responder and requester share signing_message(): hold it to the
    combined SPDM prefix spelt out (DSP0274 1.2 sec 15, Linux
    spdm_create_combined_prefix()); openssl agrees with the signatures."""
    want = (b"dmtf-spdm-v1.3.*" * 4 + bytes(4) + b"responder-challenge_auth signing"
            + b"H" * 48, b"dmtf-spdm-v1.2.*" * 4 + bytes(6) + b"responder-measurements signing"
            + b"H" * 32)
    t.eq((R.signing_message(0x13, R.CHALLENGE_CONTEXT, b"H" * 48),
          R.signing_message(0x12, R.MEASUREMENTS_CONTEXT, b"H" * 32)), want,
         "signed message M: 100-byte combined SPDM prefix and the transcript hash")


def check_protocol(t, certs, key, unix):
    """ERRORs, the socket TEST command and a unix socket."""
    responder = Responder(certs, key)
    req = Requester(SocketTransport(responder.address), responder.root_der)
    try:
        t.eq(reason(lambda: req.exchange(bytes([0x12, R.GET_DIGESTS, 0, 0]))),
             "error UnexpectedRequest", "GET_DIGESTS before GET_VERSION: UnexpectedRequest")
        t.eq(reason(req.negotiate), None, "GET_VERSION, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS")
        t.eq(reason(lambda: req.exchange(bytes([req.version, 0xE4, 0, 0]) + bytes(36))),
             "error UnsupportedRequest", "KEY_EXCHANGE: ERROR UnsupportedRequest")
        t.eq(reason(lambda: req.exchange(bytes([0x12, R.GET_DIGESTS, 0, 0]))),
             "error VersionMismatch", "GET_DIGESTS of 1.2 after 1.3 was negotiated: "
             "ERROR VersionMismatch")
        t.eq(reason(lambda: authenticate(req)), None,
             "authenticated on the same connection after the ERRORs", responder.tail())
        sock = req.transport.sock
        R.send_platform(sock, R.CMD_TEST, R.TRANSPORT_PCI_DOE, b"Client Hello!\0")
        t.eq(R.recv_platform(sock), (R.CMD_TEST, R.TRANSPORT_PCI_DOE, b"Server Hello!\0"),
             "socket TEST command: 'Server Hello!'")
    finally:
        req.close()
        responder.close()
    fail, _, log = run(certs, key, "good", authenticate, unix=unix)
    t.ok(fail is None, "good over a unix socket: authenticated", log)


def check_all(t, keys=tuple(R.ASYMS)):
    """Every check of the self-test, reported to `t` (a tap.Reporter)."""
    check_signing_message(t)
    with tempfile.TemporaryDirectory(prefix="spdm-check-") as tmp:
        for key in keys:
            certs = R.make_chain(os.path.join(tmp, key), key)
            check_good(t, certs, key)
            for behave in EXPECTED:
                check_misbehaviour(t, certs, key, behave)
            for behave in RETRIED:
                check_retried(t, certs, key, behave)
        check_protocol(t, os.path.join(tmp, keys[0]), keys[0], os.path.join(tmp, "spdm.sock"))


def main(argv):
    t = Reporter()
    check_all(t, argv or tuple(R.ASYMS))
    return t.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
