#!/usr/bin/env python3
"""An SPDM responder for the tests of the project's PCIe CMA work.

CMA (Component Measurement and Authentication, PCIe r6 sec 6.31) carries
DMTF SPDM (DSP0274) over a DOE mailbox.  QEMU forwards the DOE CMA mailbox
of its test devices (the project's QEMU: pcie-root-port, cxl-rp and
cxl-type3 with spdm-port=PORT; upstream QEMU: nvme with spdm_port=PORT) to
an external responder over the "socket platform" protocol of DMTF spdm-emu
(QEMU connects to 127.0.0.1:PORT when the device is realized and keeps the
connection); this is such a responder, so that the guest kernel's
requester authenticates a device whose certificates, keys and misbehaviour
the tests choose.

Transport, as in QEMU's backends/spdm-socket.c and
include/system/spdm-socket.h (matched against qemu/qemu at 0223e792 and
169e8d0c; hw/nvme/ctrl.c pcie_doe_spdm_rsp() is the DOE side): every
message either way is three big-endian u32 -- command, transport type,
payload length -- and the payload.  With transport PCI_DOE (2) the payload
is a whole DOE data object: Vendor ID 0x0001 and Data Object Type 1 (CMA)
in the first dword, the length in dwords (header included) in the second,
then the SPDM message, zero padded to a dword (little endian, as QEMU's
mailbox holds it).  Upstream QEMU reads a reply of at most 0x1200 bytes
(SPDM_SOCKET_MAX_MESSAGE_BUFFER_SIZE) and fails the exchange, without
reading the rest, on a longer one; the project's QEMU 7.2
(qemu/patches, hw/pci/pcie_doe_spdm.c) takes one DOE object up to its
mailbox size, and disconnects a responder that does not answer within 2 s
or breaks the framing (its mailbox then discards every CMA request).  Commands: NORMAL (an SPDM or DOE
exchange), TEST (answered "Server Hello!" as spdm-emu does), SHUTDOWN
(QEMU's spdm_socket_close(): answered, the connection is closed and the
responder listens for the next one -- spdm-emu would exit), CONTINUE, and
UNKNOWN for anything else.  DOE Discovery objects (which spdm-emu's
requester sends; QEMU answers those itself) are answered too; Secured CMA
objects (no sessions here) get an empty reply, which fails the exchange.
--unix serves the same protocol on a unix socket, for clients other than
upstream QEMU (whose spdm_socket_connect() takes a TCP port only).

SPDM 1.2 and 1.3 (DSP0274 1.2.x/1.3.x): GET_VERSION, GET_CAPABILITIES,
NEGOTIATE_ALGORITHMS, GET_DIGESTS, GET_CERTIFICATE, CHALLENGE and
GET_MEASUREMENTS; ERROR UnsupportedRequest for other requests,
UnexpectedRequest for requests out of order, VersionMismatch for a request
of another version than the negotiated one.  One certificate slot (0),
ECDSA P-256/P-384 or RSASSA-3072 (PKCS#1 v1.5) keys, SHA-256 or SHA-384
(SHA-384 when the requester offers both), no chunking, no sessions.

The certificates (make_chain(), or the make-chain subcommand) are a root
CA, an intermediate CA and a leaf that looks like a device certificate:
CN naming the device, BasicConstraints CA:FALSE, KeyUsage digitalSignature,
the DMTF responder-authentication ExtendedKeyUsage and the Subject
Alternative Name OtherName (OID 2.23.147) that Linux's pci_cma_validate()
compares with the device's IDs ("Vendor=1b36:Device=0010:..."; --san).
CERTS/root.der (and .pem) is the root a harness puts into the guest's
.cma keyring; the chains are kept in CERTS and reused, so the root stays
the same across responders.

--behave NAME, and what a correct requester must conclude:
  good            a well-behaved device: it authenticates.
  bad-signature   CHALLENGE_AUTH and signed MEASUREMENTS carry a signature
                  with its last byte inverted: signature verification
                  fails; the device is not authenticated.
  untrusted-root  serves a correct chain from a second root
                  (CERTS/untrusted/, "Rogue ...") signed with that chain's
                  leaf key; CERTS/root.der stays the first root: the chain's
                  root is not trusted (Linux: "Root certificate ... not
                  found in .cma keyring", -ENOKEY); not authenticated.
  expired         the leaf's notAfter is yesterday, otherwise correct and
                  signed by the trusted intermediate: a requester checking
                  validity rejects it as expired.
  malformed-cert  the leaf's TBSCertificate tag is changed (SEQUENCE to
                  OCTET STRING); its outer length is intact, so it can be
                  delimited, and DIGESTS covers the chain as served, so it
                  is the parse that fails (Linux: "Certificate parse error").
  wrong-nonce     CHALLENGE_AUTH and signed MEASUREMENTS are signed over a
                  transcript in which the requester's nonce has every bit
                  inverted: signature verification fails.
  truncated       CHALLENGE_AUTH is cut short by half its signature: the
                  response is shorter than its fields say (Linux:
                  "Truncated challenge_auth response", -EIO).
  oversized       the first CERTIFICATE response is padded to 16 bytes more
                  than the smaller of the requester's DataTransferSize and
                  the 0x1200-byte socket buffer (4600 bytes of SPDM after
                  the DOE header), and the connection is then closed.
                  Upstream QEMU refuses such a payload without reading it,
                  so its mailbox never sets Data Object Ready (the
                  requester times out); closing keeps it from parsing the
                  rest as the next reply.  The project's QEMU passes it to
                  the guest.  A requester that sees it must reject it as
                  larger than it allowed.  With --keep-open (for the
                  project's QEMU, which reads the whole answer) every
                  CERTIFICATE response is oversized and the connection
                  stays open, so that each requester of a guest (the
                  kernel's at boot, then the harness's) meets it.
  bad-version     VERSION lists only 1.0 and 1.1, and GET_CAPABILITIES of
                  any version is answered with ERROR VersionMismatch (and
                  what would follow with UnexpectedRequest): a 1.2+
                  requester finds no common version; one that also speaks
                  1.1 (Linux: SPDM_MIN_VER 0x10) fails at GET_CAPABILITIES.
  silent          answers GET_VERSION, then reads the next request and
                  closes the connection without an answer (on every later
                  connection too).  QEMU's spdm_socket_rsp() returns 0, its
                  DOE mailbox is reset without Data Object Ready and the
                  requester times out (Linux: PCI_DOE_TIMEOUT, 1 s).  Not
                  answering on an open socket would block QEMU's vCPU in
                  recv() under the BQL and freeze the guest instead.
  busy            answers every request first with ERROR Busy and the
                  same request sent again as a good device: a requester
                  that retries authenticates it, one that does not fails
                  on the first request.
  not-ready       answers CHALLENGE and GET_MEASUREMENTS with ERROR
                  ResponseNotReady (RDTExponent 10: about 1 ms, RDTM 2, a
                  token), and RESPOND_IF_READY with that request code and
                  token with the response: a requester that follows DSP0274
                  1.2 sec 10.12.1 authenticates it.

Usage:
  spdm_responder.py serve --port 0 --key ecdsa-p384 --certs DIR [--verbose]
  spdm_responder.py make-chain DIR --key rsa-3072
serve prints "port N" (or "unix PATH") and "root PATH" on stdout, then
serves connections one after another; --verbose logs one line per
exchange on stderr.  Python 3.11 and python3-cryptography 38 or later.
"""
import argparse
import collections
import datetime
import hashlib
import os
import secrets
import socket
import struct
import sys
import tempfile

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

# -- socket platform (QEMU include/system/spdm-socket.h) ----------------------
CMD_NORMAL = 0x0001
CMD_CONTINUE = 0xFFFD
CMD_SHUTDOWN = 0xFFFE
CMD_UNKNOWN = 0xFFFF
CMD_TEST = 0xDEAD
TRANSPORT_PCI_DOE = 0x02
SOCKET_MAX_PAYLOAD = 0x1200     # SPDM_SOCKET_MAX_MESSAGE_BUFFER_SIZE

# -- DOE data objects (PCIe r6 sec 6.30.1) ------------------------------------
DOE_VENDOR_PCI_SIG = 0x0001
DOE_DISCOVERY = 0
DOE_CMA = 1
DOE_HEADER = 8
SPDM_MAX = SOCKET_MAX_PAYLOAD - DOE_HEADER  # our DataTransferSize

# -- SPDM request and response codes (DSP0274 1.2 sec 10, message tables) -----
GET_DIGESTS, GET_CERTIFICATE, CHALLENGE, GET_VERSION = 0x81, 0x82, 0x83, 0x84
GET_MEASUREMENTS, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS = 0xE0, 0xE1, 0xE3
RESPOND_IF_READY = 0xFF
DIGESTS, CERTIFICATE, CHALLENGE_AUTH, VERSION = 0x01, 0x02, 0x03, 0x04
MEASUREMENTS, CAPABILITIES, ALGORITHMS, ERROR = 0x60, 0x61, 0x63, 0x7F
CODE_NAMES = {globals()[n]: n for n in (
    "GET_DIGESTS", "GET_CERTIFICATE", "CHALLENGE", "GET_VERSION", "GET_MEASUREMENTS",
    "GET_CAPABILITIES", "NEGOTIATE_ALGORITHMS", "RESPOND_IF_READY", "DIGESTS", "CERTIFICATE", "CHALLENGE_AUTH",
    "VERSION", "MEASUREMENTS", "CAPABILITIES", "ALGORITHMS", "ERROR")}

# ERROR codes (DSP0274 1.2 sec 10.12, ERROR response)
INVALID_REQUEST, BUSY, UNEXPECTED_REQUEST, UNSUPPORTED_REQUEST = 0x01, 0x03, 0x04, 0x07
VERSION_MISMATCH, RESPONSE_NOT_READY = 0x41, 0x42
ERROR_NAMES = {INVALID_REQUEST: "InvalidRequest", BUSY: "Busy",
               UNEXPECTED_REQUEST: "UnexpectedRequest",
               UNSUPPORTED_REQUEST: "UnsupportedRequest", VERSION_MISMATCH: "VersionMismatch",
               RESPONSE_NOT_READY: "ResponseNotReady"}
NOT_READY_RDT_EXPONENT, NOT_READY_RDTM = 10, 2

# CAPABILITIES flags (DSP0274 1.2 sec 10.3): CERT_CAP, CHAL_CAP, MEAS_CAP=10b
CERT_CAP, CHAL_CAP, MEAS_CAP_SIG, MEAS_CAP_MASK = 1 << 1, 1 << 2, 2 << 3, 3 << 3
RSP_FLAGS = CERT_CAP | CHAL_CAP | MEAS_CAP_SIG
CT_EXPONENT = 16                # 2^16 us for a signature, well under CMA's 2^23
MIN_DATA_TRANSFER_SIZE = 42     # DSP0274 1.2 sec 10.3
MEAS_SPEC_DMTF = 0x01
OPAQUE_FMT_MASK = 0x0F          # OtherParamsSupport bits [3:0] (DSP0274 1.2 sec 10.4)

CHALLENGE_CONTEXT = "responder-challenge_auth signing"
MEASUREMENTS_CONTEXT = "responder-measurements signing"

Hash = collections.namedtuple("Hash", "bit name size algorithm meas_bit")
HASHES = {0x01: Hash(0x01, "sha256", 32, hashes.SHA256, 1 << 1),
          0x02: Hash(0x02, "sha384", 48, hashes.SHA384, 1 << 2)}
HASH_PREFERENCE = (0x02, 0x01)

Asym = collections.namedtuple("Asym", "name bit siglen cert_hash")
ASYMS = {"ecdsa-p256": Asym("ecdsa-p256", 1 << 4, 64, hashes.SHA256),
         "ecdsa-p384": Asym("ecdsa-p384", 1 << 7, 96, hashes.SHA384),
         "rsa-3072": Asym("rsa-3072", 1 << 2, 384, hashes.SHA384)}
ASYM_BY_BIT = {a.bit: a for a in ASYMS.values()}

BEHAVIOURS = ("good", "bad-signature", "untrusted-root", "expired", "malformed-cert",
              "wrong-nonce", "truncated", "oversized", "bad-version", "silent", "busy",
              "not-ready")

# The identity Linux's pci_cma_construct_san() builds for QEMU's NVMe
# controller (1b36:0010, class 010802, rev 02, subsystem 1af4:1100, no DSN)
DEFAULT_SAN = "Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100"
OID_CMA = x509.ObjectIdentifier("2.23.147")
OID_DMTF_EKU_RESPONDER_AUTH = x509.ObjectIdentifier("1.3.6.1.4.1.412.274.3.1")


def digest(hash_, data):
    return hashlib.new(hash_.name, data).digest()


# -- signatures (DSP0274 1.2 sec 15, signature generation) ---------------------
def signing_message(version, context, transcript_hash):
    """M = combined_spdm_prefix || Hash(transcript): four times
    "dmtf-spdm-vX.Y.*", zero padding and the context string filling 36
    bytes, then the hash (SPDM 1.2 and later)."""
    prefix = f"dmtf-spdm-v{version >> 4}.{version & 0xF}.*".encode() * 4
    return prefix + bytes(36 - len(context)) + context.encode() + transcript_hash


def _scheme(key, hash_):
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return (padding.PKCS1v15(), hash_.algorithm())
    return (ec.ECDSA(hash_.algorithm()),)


def spdm_sign(key, hash_, version, context, transcript):
    """SPDMsign(): RSA and ECDSA sign M with the negotiated hash; an ECDSA
    signature is r || s, each big endian and as long as the curve's order."""
    sig = key.sign(signing_message(version, context, digest(hash_, transcript)),
                   *_scheme(key, hash_))
    if isinstance(key, rsa.RSAPrivateKey):
        return sig
    size = (key.curve.key_size + 7) // 8
    r, s = utils.decode_dss_signature(sig)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def spdm_verify(public_key, hash_, version, context, transcript, sig):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        half = len(sig) // 2
        sig = utils.encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                         int.from_bytes(sig[half:], "big"))
    try:
        public_key.verify(sig, signing_message(version, context, digest(hash_, transcript)),
                          *_scheme(public_key, hash_))
        return True
    except InvalidSignature:
        return False


# -- certificates --------------------------------------------------------------
def new_key(key_type):
    if key_type == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1() if key_type == "ecdsa-p256"
                                   else ec.SECP384R1())


def _key_usage(ca):
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                         key_encipherment=False, data_encipherment=False,
                         key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _leaf_extensions(san):
    # The SAN OtherName value is a UTF8String (PCIe r6.1 sec 6.31.3)
    name = san.encode()
    other = x509.OtherName(OID_CMA, b"\x0c" + _der_length(len(name)) + name)
    return [(x509.SubjectAlternativeName([other]), False),
            (x509.ExtendedKeyUsage([OID_DMTF_EKU_RESPONDER_AUTH]), False)]


def _der_length(n):
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def issue(cn, key, issuer=None, *, ca, key_type, days=(-1, 3650), extra=()):
    """A certificate for `key` with CN `cn`, signed by `issuer` (a (cert,
    key) pair; self-signed without), valid from/to `days` around now, with
    the (extension, critical) pairs `extra` besides the usual ones."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PCI CMA tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=days[0]))
               .not_valid_after(now + datetime.timedelta(days=days[1])))
    extensions = [
        (x509.BasicConstraints(ca=ca, path_length=None), True),
        (_key_usage(ca), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False),
    ] + list(extra)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, ASYMS[key_type].cert_hash())


CHAIN = ("root", "intermediate", "leaf")


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _save(directory, stem, cert, key):
    _write(os.path.join(directory, stem + ".der"), cert.public_bytes(serialization.Encoding.DER))
    _write(os.path.join(directory, stem + ".pem"), cert.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, stem + ".key.pem"), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def load_pair(directory, stem):
    cert = x509.load_der_x509_certificate(_read(os.path.join(directory, stem + ".der")))
    key = serialization.load_pem_private_key(
        _read(os.path.join(directory, stem + ".key.pem")), None)
    return cert, key


def make_chain(directory, key_type="ecdsa-p256", san=DEFAULT_SAN,
               device="QEMU NVMe Ctrl", issuer="SPDM test"):
    """Write root, intermediate and leaf (device) certificates with their
    private keys into `directory` as root.der/.pem/.key.pem etc., unless a
    chain of `key_type` is there already (then it is kept, so the root a
    harness trusts stays the same).  Returns `directory`."""
    os.makedirs(directory, exist_ok=True)
    kind = os.path.join(directory, "key-type")
    if os.path.exists(os.path.join(directory, "leaf.der")):
        if _read(kind).decode().strip() != key_type:
            raise ValueError(f"{directory} holds a chain of another key type")
        return directory
    root_key, inter_key, leaf_key = (new_key(key_type) for _ in CHAIN)
    root = issue(f"{issuer} Root CA", root_key, ca=True, key_type=key_type)
    inter = issue(f"{issuer} Intermediate CA", inter_key, (root, root_key),
                  ca=True, key_type=key_type)
    leaf = issue(device, leaf_key, (inter, inter_key), ca=False, key_type=key_type,
                 extra=_leaf_extensions(san))
    for stem, cert, key in zip(CHAIN, (root, inter, leaf), (root_key, inter_key, leaf_key)):
        _save(directory, stem, cert, key)
    _write(kind, key_type.encode() + b"\n")
    return directory


def expired_leaf(directory, key_type):
    """The leaf re-issued by the same intermediate, expired yesterday."""
    path = os.path.join(directory, "leaf-expired.der")
    if not os.path.exists(path):
        leaf, leaf_key = load_pair(directory, "leaf")
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        extra = [(e.value, e.critical) for e in leaf.extensions if isinstance(
            e.value, (x509.SubjectAlternativeName, x509.ExtendedKeyUsage))]
        cert = issue(cn, leaf_key, load_pair(directory, "intermediate"), ca=False,
                     key_type=key_type, days=(-30, -1), extra=extra)
        _write(path, cert.public_bytes(serialization.Encoding.DER))
    return _read(path)


def corrupt(der):
    """The DER with its first inner tag (TBSCertificate's SEQUENCE) made an
    OCTET STRING: the outer length still delimits it, nothing parses it."""
    header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    return der[:header] + b"\x04" + der[header + 1:]


def load_identity(directory, key_type, behave="good", san=DEFAULT_SAN):
    """(DER certificates root first, leaf private key) as `behave` serves them."""
    make_chain(directory, key_type, san=san)
    if behave == "untrusted-root":
        directory = make_chain(os.path.join(directory, "untrusted"), key_type, san=san,
                               issuer="Rogue SPDM test")
    ders = [_read(os.path.join(directory, stem + ".der")) for stem in CHAIN]
    if behave == "expired":
        ders[-1] = expired_leaf(directory, key_type)
    elif behave == "malformed-cert":
        ders[-1] = corrupt(ders[-1])
    return ders, load_pair(directory, "leaf")[1]


def spdm_cert_chain(hash_, ders):
    """DSP0274 1.2 "Certificate chain format": Length (u16, the whole chain),
    Reserved (u16), RootHash (hash of the first certificate), Certificates."""
    body = digest(hash_, ders[0]) + b"".join(ders)
    return struct.pack("<HH", 4 + len(body), 0) + body


# -- measurements (DSP0274 1.2 sec 10.11.1, measurement block) -----------------
# (index, DMTFSpecMeasurementValueType, value, part of the TCB): bit 7 of the
# type set means a raw bit stream, clear a digest of `value`
MEASUREMENT_SOURCES = ((1, 0x00, b"immutable ROM", True),
                       (2, 0x01, b"mutable firmware 1.0.0", True),
                       (3, 0x02, b"hardware configuration", False),
                       (4, 0x86, b"1.0.0", False))


def measurement_blocks(hash_, tcb_only=False):
    """{index: measurement block} in the DMTF measurement specification."""
    blocks = {}
    for index, kind, value, tcb in MEASUREMENT_SOURCES:
        if tcb_only and not tcb:
            continue
        value = value if kind & 0x80 else digest(hash_, value)
        dmtf = struct.pack("<BH", kind, len(value)) + value
        blocks[index] = struct.pack("<BBH", index, MEAS_SPEC_DMTF, len(dmtf)) + dmtf
    return blocks


def request_length(msg):
    """The length of a request without the DOE object's padding, from its
    fields (the transcripts hash exact messages)."""
    version, code, attributes = msg[0], msg[1], msg[2]
    context = 8 if version >= 0x13 else 0            # RequesterContext (1.3)
    if code == GET_CAPABILITIES:
        return {0x10: 4, 0x11: 12}.get(version, 20)
    if code == NEGOTIATE_ALGORITHMS:
        return max(32, struct.unpack_from("<H", msg, 4)[0] if len(msg) >= 6 else 0)
    if code == GET_CERTIFICATE:
        return 8
    if code == CHALLENGE:
        return 36 + context
    if code == RESPOND_IF_READY:
        return 4
    if code == GET_MEASUREMENTS:                     # Nonce and SlotIDParam if signed
        return 4 + (33 if attributes & 1 else 0) + context
    return 4


class Session:
    """The responder's state for one connection: negotiated parameters and
    the transcripts of DSP0274 1.2 sec 10.9/10.11: VCA, auth_log (B: the
    digests and certificates since the last CHALLENGE) and meas_log (the
    measurements since the last signed one)."""

    def __init__(self, ders, key, key_type, versions=(0x12, 0x13), behave="good",
                 keep_open=False):
        self.ders, self.key, self.asym = ders, key, ASYMS[key_type]
        self.versions, self.behave, self.keep_open = tuple(versions), behave, keep_open
        self.silenced = self.close = self.oversized_sent = False
        self.busy_with = self.pending = None
        self.reset()

    def reset(self):
        self.state, self.version, self.hash, self.limit = "start", 0x10, None, SPDM_MAX
        self.vca = self.auth_log = self.meas_log = b""
        self.meas = False

    def error(self, code, data=0):
        return bytes([self.version, ERROR, code, data])

    def respond(self, msg):
        """The response to SPDM request `msg`, None for none at all."""
        if self.silenced:
            return None
        if len(msg) < 4:
            return self.error(INVALID_REQUEST)
        if self.behave == "busy":
            if msg != self.busy_with:
                self.busy_with = msg
                return bytes([msg[0], ERROR, BUSY, 0])     # the request's version
            self.busy_with = None
        if msg[1] == RESPOND_IF_READY:
            return self.respond_if_ready(msg)
        handler, state = self.HANDLERS.get(msg[1], (None, None))
        if handler is None:
            return self.error(UNSUPPORTED_REQUEST, msg[1])
        if state != "any" and state != self.state:
            return self.error(UNEXPECTED_REQUEST)
        if msg[1] not in (GET_VERSION, GET_CAPABILITIES) and msg[0] != self.version:
            return self.error(VERSION_MISMATCH)
        size = request_length(msg)
        if size > len(msg) or size < 4:
            return self.error(INVALID_REQUEST)
        if msg[1] != GET_MEASUREMENTS:
            self.meas_log = b""    # any other request ends L1/L2 (sec 10.11)
        rsp = handler(self, msg[:size])
        if self.behave == "not-ready" and msg[1] in (CHALLENGE, GET_MEASUREMENTS) \
                and rsp[1] != ERROR:
            # The response is made now (the transcripts have the request
            # and this response), handed out on RESPOND_IF_READY
            self.pending = (msg[1], secrets.randbelow(256), rsp)
            return self.error(RESPONSE_NOT_READY) + bytes(
                [NOT_READY_RDT_EXPONENT, msg[1], self.pending[1], NOT_READY_RDTM])
        return rsp

    # RESPOND_IF_READY (DSP0274 1.2 sec 10.12.1): Param1 the request code
    # of the ResponseNotReady, Param2 its token
    def respond_if_ready(self, req):
        if req[0] != self.version:
            return self.error(VERSION_MISMATCH)
        if self.pending is None or (req[2], req[3]) != self.pending[:2]:
            return self.error(UNEXPECTED_REQUEST)
        rsp, self.pending = self.pending[2], None
        return rsp

    def chain(self):
        return spdm_cert_chain(self.hash, self.ders)

    # GET_VERSION / VERSION (DSP0274 1.2 sec 10.2)
    def get_version(self, req):
        if req[0] != 0x10:
            return self.error(VERSION_MISMATCH)
        self.reset()
        offered = (0x10, 0x11) if self.behave == "bad-version" else self.versions
        rsp = bytes([0x10, VERSION, 0, 0, 0, len(offered)])
        rsp += b"".join(struct.pack("<H", v << 8) for v in offered)
        self.vca, self.state = req + rsp, "version"
        self.silenced = self.behave == "silent"
        return rsp

    # GET_CAPABILITIES / CAPABILITIES (DSP0274 1.2 sec 10.3)
    def get_capabilities(self, req):
        if req[0] not in self.versions or self.behave == "bad-version":
            return self.error(VERSION_MISMATCH)
        transfer, max_msg = struct.unpack_from("<II", req, 12)
        if transfer < MIN_DATA_TRANSFER_SIZE or max_msg < transfer:
            return self.error(INVALID_REQUEST)
        self.version, self.limit = req[0], min(SPDM_MAX, transfer)
        rsp = struct.pack("<BBBBBBHIII", self.version, CAPABILITIES, 0, 0, 0, CT_EXPONENT,
                          0, RSP_FLAGS, SPDM_MAX, SPDM_MAX)
        self.vca, self.state = self.vca + req + rsp, "capabilities"
        return rsp

    # NEGOTIATE_ALGORITHMS / ALGORITHMS (DSP0274 1.2 sec 10.4)
    def negotiate_algorithms(self, req):
        length, spec, other, asym, hash_bits, ext_asym, ext_hash = struct.unpack_from(
            "<HBBII12xBB", req, 4)
        hash_bit = next((b for b in HASH_PREFERENCE if hash_bits & b), None)
        if length < 32 + 4 * (ext_asym + ext_hash) or not asym & self.asym.bit or not hash_bit:
            return self.error(INVALID_REQUEST)
        self.hash, self.meas = HASHES[hash_bit], bool(spec & MEAS_SPEC_DMTF)
        other &= OPAQUE_FMT_MASK
        other_sel = other & -other      # one opaque data format if offered, else none
        # No RespAlgStruct: no key exchange, no mutual authentication
        rsp = struct.pack("<BBBBHBBIII11xBBBxx", self.version, ALGORITHMS, 0, 0, 36,
                          MEAS_SPEC_DMTF if self.meas else 0, other_sel,
                          self.hash.meas_bit if self.meas else 0, self.asym.bit,
                          self.hash.bit, 0, 0, 0)
        self.vca, self.state = self.vca + req + rsp, "negotiated"
        return rsp

    # GET_DIGESTS / DIGESTS: SupportedSlotMask (1.3), ProvisionedSlotMask
    def get_digests(self, req):
        rsp = bytes([self.version, DIGESTS, 0x01 if self.version >= 0x13 else 0, 0x01])
        rsp += digest(self.hash, self.chain())
        self.auth_log += req + rsp
        return rsp

    # GET_CERTIFICATE / CERTIFICATE: PortionLength, RemainderLength, portion
    def get_certificate(self, req):
        slot, size_only = req[2] & 0x0F, self.version >= 0x13 and req[3] & 1
        offset, length = struct.unpack_from("<HH", req, 4)
        chain = self.chain()
        if slot != 0 or (offset >= len(chain) and not size_only):
            return self.error(INVALID_REQUEST)
        portion = 0 if size_only else min(length, len(chain) - offset, self.limit - 8)
        start = 0 if size_only else offset
        rsp = struct.pack("<BBBBHH", self.version, CERTIFICATE, slot, 0, portion,
                          len(chain) - start - portion) + chain[start:start + portion]
        self.auth_log += req + rsp
        if self.behave == "oversized" and not self.oversized_sent:
            self.oversized_sent = self.close = not self.keep_open
            rsp += bytes(self.limit + 16 - len(rsp))
        return rsp

    def signed_request(self, req):
        """`req` as the transcript has it: with wrong-nonce, the Nonce
        (always at offset 4) inverted."""
        if self.behave != "wrong-nonce":
            return req
        return req[:4] + bytes(b ^ 0xFF for b in req[4:36]) + req[36:]

    def sign(self, rsp, transcript, context):
        sig = spdm_sign(self.key, self.hash, self.version, context, transcript)
        if self.behave == "bad-signature":
            sig = sig[:-1] + bytes([sig[-1] ^ 0xFF])
        return rsp + sig

    def summary_hash(self, kind):
        """MeasurementSummaryHash: none (0), of the TCB's blocks (1) or of
        all of them (0xFF)."""
        if kind == 0:
            return b""
        return digest(self.hash, b"".join(measurement_blocks(self.hash, kind == 1).values()))

    # CHALLENGE / CHALLENGE_AUTH (DSP0274 1.2 sec 10.9): CertChainHash, Nonce,
    # MeasurementSummaryHash, OpaqueDataLength, OpaqueData, RequesterContext
    # (1.3), Signature over M1 = VCA || B || CHALLENGE || CHALLENGE_AUTH
    def challenge(self, req):
        if req[2] != 0 or req[3] not in (0, 1, 0xFF) or (req[3] and not self.meas):
            return self.error(INVALID_REQUEST)
        rsp = bytes([self.version, CHALLENGE_AUTH, 0, 0x01]) + digest(self.hash, self.chain())
        rsp += secrets.token_bytes(32) + self.summary_hash(req[3]) + b"\0\0" + req[36:]
        transcript = self.vca + self.auth_log + self.signed_request(req) + rsp
        self.auth_log = b""
        rsp = self.sign(rsp, transcript, CHALLENGE_CONTEXT)
        if self.behave == "truncated":
            rsp = rsp[:-self.asym.siglen // 2]
        return rsp

    # GET_MEASUREMENTS / MEASUREMENTS (DSP0274 1.2 sec 10.11): NumberOfBlocks,
    # MeasurementRecordLength (u24), record, Nonce, OpaqueDataLength,
    # OpaqueData, RequesterContext (1.3), Signature over L1 = VCA || every
    # GET_MEASUREMENTS/MEASUREMENTS since the last signed one
    def get_measurements(self, req):
        signed, op = req[2] & 1, req[3]
        blocks = measurement_blocks(self.hash)
        if not self.meas or (op not in (0, 0xFF) and op not in blocks) or (
                signed and req[36] & 0x0F):
            return self.error(INVALID_REQUEST)
        record = b"".join(blocks.values()) if op == 0xFF else blocks.get(op, b"")
        count = len(blocks) if op == 0xFF else int(op != 0)
        rsp = struct.pack("<BBBBB", self.version, MEASUREMENTS, len(blocks) if op == 0 else 0,
                          0, count) + len(record).to_bytes(3, "little") + record
        rsp += secrets.token_bytes(32) + b"\0\0" + (req[-8:] if self.version >= 0x13 else b"")
        self.auth_log = b""    # GET_MEASUREMENTS before CHALLENGE resets M1/M2
        if not signed:
            self.meas_log += req + rsp
            return rsp
        transcript = self.vca + self.meas_log + self.signed_request(req) + rsp
        self.meas_log = b""
        return self.sign(rsp, transcript, MEASUREMENTS_CONTEXT)


# request -> (handler, the state it needs)
Session.HANDLERS = {
    GET_VERSION: (Session.get_version, "any"),
    GET_CAPABILITIES: (Session.get_capabilities, "version"),
    NEGOTIATE_ALGORITHMS: (Session.negotiate_algorithms, "capabilities"),
    GET_DIGESTS: (Session.get_digests, "negotiated"),
    GET_CERTIFICATE: (Session.get_certificate, "negotiated"),
    CHALLENGE: (Session.challenge, "negotiated"),
    GET_MEASUREMENTS: (Session.get_measurements, "negotiated"),
}


# -- transport -----------------------------------------------------------------
def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_platform(sock, limit=None):
    """(command, transport, payload), None at end of stream; OverflowError
    for a payload longer than `limit`, which QEMU would not read."""
    head = recv_exact(sock, 12)
    if head is None:
        return None
    command, transport, size = struct.unpack(">III", head)
    if limit is not None and size > limit:
        raise OverflowError(f"socket payload of {size} bytes, more than {limit}")
    payload = recv_exact(sock, size) if size else b""
    return None if payload is None else (command, transport, payload)


def send_platform(sock, command, transport, payload=b""):
    sock.sendall(struct.pack(">III", command, transport, len(payload)) + payload)


def doe_wrap(payload, obj_type=DOE_CMA):
    payload += bytes(-len(payload) % 4)
    return struct.pack("<HBxI", DOE_VENDOR_PCI_SIG, obj_type, 2 + len(payload) // 4) + payload


def doe_unwrap(obj):
    """(Vendor ID, Data Object Type, payload with its padding)."""
    if len(obj) < DOE_HEADER:
        raise ValueError(f"DOE object of {len(obj)} bytes")
    vendor, obj_type, length = struct.unpack_from("<HBxI", obj)
    length = (length & 0x3FFFF) or 1 << 18
    if length * 4 != len(obj):
        raise ValueError(f"DOE length {length} dwords in an object of {len(obj)} bytes")
    return vendor, obj_type, obj[DOE_HEADER:]


def doe_discovery(payload):
    """DOE Discovery (PCIe r6 sec 6.30.1.1): index 0 Discovery, 1 CMA."""
    index = payload[0] if payload else 0
    obj_type, next_index = (DOE_DISCOVERY, 1) if index == 0 else (DOE_CMA, 0)
    return struct.pack("<HBB", DOE_VENDOR_PCI_SIG, obj_type, next_index)


def describe(msg):
    if len(msg) < 2:
        return f"{len(msg)} bytes"
    name = CODE_NAMES.get(msg[1], f"{msg[1]:#04x}")
    if msg[1] == ERROR and len(msg) >= 3:
        name += f" {ERROR_NAMES.get(msg[2], hex(msg[2]))}"
    return f"{name} v{msg[0] >> 4}.{msg[0] & 0xF} ({len(msg)} bytes)"


def handle_doe(session, transport, payload, log):
    """The DOE object answering `payload`; b"" for none (QEMU then fails
    the exchange), None to close the connection without an answer."""
    try:
        if transport != TRANSPORT_PCI_DOE:
            raise ValueError(f"transport {transport}, not PCI_DOE")
        vendor, obj_type, msg = doe_unwrap(payload)
    except ValueError as e:
        log(f"dropped: {e}")
        return b""
    if vendor == DOE_VENDOR_PCI_SIG and obj_type == DOE_DISCOVERY:
        return doe_wrap(doe_discovery(msg), DOE_DISCOVERY)
    if vendor != DOE_VENDOR_PCI_SIG or obj_type != DOE_CMA:
        log(f"dropped: DOE object {vendor:#06x}:{obj_type}")
        return b""
    rsp = session.respond(msg)
    log(f"{describe(msg)} -> {describe(rsp) if rsp is not None else 'no answer, closing'}")
    return None if rsp is None else doe_wrap(rsp)


def serve_connection(conn, session, log):
    while True:
        got = recv_platform(conn)
        if got is None:
            return
        command, transport, payload = got
        if command == CMD_NORMAL:
            reply = handle_doe(session, transport, payload, log)
            if reply is None:
                return
            send_platform(conn, CMD_NORMAL, transport, reply)
            if session.close:
                return
        elif command == CMD_TEST:
            send_platform(conn, CMD_TEST, transport, b"Server Hello!\0")
        elif command in (CMD_SHUTDOWN, CMD_CONTINUE):
            send_platform(conn, command, transport)
            if command == CMD_SHUTDOWN:
                return
        else:
            send_platform(conn, CMD_UNKNOWN, transport)


def listen(port=None, unix=None):
    if unix:
        if os.path.exists(unix):
            os.unlink(unix)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))   # QEMU connects to INADDR_LOOPBACK
    sock.listen(4)
    return sock


def serve(args):
    certs = args.certs or tempfile.mkdtemp(prefix="spdm-certs-")
    ders, key = load_identity(certs, args.key, args.behave, args.san)
    versions = tuple(int(v.replace(".", ""), 16) for v in args.versions.split(","))

    def log(line):
        if args.verbose:
            print(f"spdm-responder: {line}", file=sys.stderr, flush=True)

    with listen(args.port, args.unix) as sock:
        where = f"unix {args.unix}" if args.unix else f"port {sock.getsockname()[1]}"
        print(f"{where}\nroot {os.path.join(certs, 'root.der')}", flush=True)
        while True:
            conn, _ = sock.accept()
            log("connected")
            with conn:
                try:
                    serve_connection(conn, Session(ders, key, args.key, versions,
                                                   args.behave, args.keep_open), log)
                except OSError as e:
                    log(f"connection: {e}")
            log("disconnected")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="serve SPDM over the socket platform protocol")
    where = srv.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (0: any, printed)")
    where.add_argument("--unix", help="unix socket path")
    srv.add_argument("--certs", help="certificate directory (default: a new one)")
    srv.add_argument("--behave", choices=BEHAVIOURS, default="good")
    srv.add_argument("--versions", default="1.2,1.3", choices=("1.2", "1.3", "1.2,1.3"))
    srv.add_argument("--verbose", action="store_true", help="one line per exchange on stderr")
    srv.add_argument("--keep-open", action="store_true",
                     help="oversized: every CERTIFICATE, without hanging up (the project's QEMU)")
    mk = sub.add_parser("make-chain", help="write a certificate chain and keys")
    mk.add_argument("certs")
    for p in (srv, mk):
        p.add_argument("--key", choices=tuple(ASYMS), default="ecdsa-p256")
        p.add_argument("--san", default=DEFAULT_SAN,
                       help="leaf Subject Alternative Name (CMA OtherName)")
    args = parser.parse_args(argv)
    try:
        if args.command == "make-chain":
            print(os.path.join(make_chain(args.certs, args.key, args.san), "root.der"))
        else:
            serve(args)
    except (ValueError, OSError) as e:
        sys.exit(f"spdm_responder: {e}")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
