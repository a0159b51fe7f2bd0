"""Throw-away X.509 CAs and certificates for the TLS tests (openssl)."""

import os
import shutil
import subprocess
import tempfile

def _openssl(*args, cwd=None):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], p.stderr.decode()))


def _tls_ca(d, cn):
    os.makedirs(d, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
             "-subj", "/CN=" + cn, "-keyout", os.path.join(d, "ca-key.pem"),
             "-out", os.path.join(d, "ca-cert.pem"),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return d


def _tls_leaf(ca, out_cert, out_key, cn, server, dates=None,
              san="DNS:localhost,IP:127.0.0.1"):
    """A certificate for @cn signed by CA folder @ca; @dates (start, end as
    YYYYMMDDHHMMSSZ) for one outside its validity; a server's names are
    @san."""
    work = tempfile.mkdtemp(prefix="tls-", dir=os.path.dirname(out_cert))
    ext = os.path.join(work, "ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=%s\n" % ("serverAuth" if server
                                           else "clientAuth"))
        if server:
            f.write("subjectAltName=%s\n" % san)
    csr = os.path.join(work, "req.csr")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + cn,
             "-keyout", out_key, "-out", csr)
    if not dates:
        _openssl("x509", "-req", "-in", csr, "-CA",
                 os.path.join(ca, "ca-cert.pem"), "-CAkey",
                 os.path.join(ca, "ca-key.pem"), "-CAcreateserial",
                 "-days", "30", "-extfile", ext, "-out", out_cert)
    else:
        os.makedirs(os.path.join(work, "new"))
        open(os.path.join(work, "index.txt"), "w").close()
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("1000\n")
        cnf = os.path.join(work, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\n"
                    "new_certs_dir=%s/new\nserial=%s/serial\n"
                    "default_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n"
                    % (work, work, work))
        _openssl("ca", "-batch", "-config", cnf, "-notext",
                 "-cert", os.path.join(ca, "ca-cert.pem"),
                 "-keyfile", os.path.join(ca, "ca-key.pem"),
                 "-startdate", dates[0], "-enddate", dates[1],
                 "-extfile", ext, "-in", csr, "-out", out_cert)
    shutil.rmtree(work)


def make_tls_node_certs(root, addresses):
    """One folder per node of @addresses ({name: IP}) under @root, in
    QEMU's layout, from one CA: ca-cert.pem, a server certificate for the
    node's IP (CN=name) and a client certificate (CN=name-client), as
    tools/ocf/colo's tls_dir wants them.  {name: DIR}."""
    ca = _tls_ca(os.path.join(root, "ca"), "colo-cluster-ca")
    dirs = {}
    for name, ip in addresses.items():
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ca, "ca-cert.pem"), d)
        _tls_leaf(ca, os.path.join(d, "server-cert.pem"),
                  os.path.join(d, "server-key.pem"), name, True,
                  san="DNS:%s,IP:%s" % (name, ip))
        _tls_leaf(ca, os.path.join(d, "client-cert.pem"),
                  os.path.join(d, "client-key.pem"), name + "-client", False)
        dirs[name] = d
    return dirs


def make_tls_certs(root):
    """Certificates for the TLS tests, made with openssl, in QEMU's file
    layout (tls-creds-x509 dir=): {"server": DIR, "client": DIR, ...}.
    server: CN=localhost (and 127.0.0.1) from CA "colo-test-ca";
    client: CN=client from it; intruder: CN=intruder from it; otherca: a
    CN=client from another CA (its ca-cert.pem holds both CAs, so the
    client itself accepts the server); expired: CN=client, valid in 2020
    only."""
    ca = _tls_ca(os.path.join(root, "ca"), "colo-test-ca")
    other = _tls_ca(os.path.join(root, "ca2"), "another-ca")
    dirs = {}

    def folder(name, cn, server=False, signer=ca, dates=None, cas=(ca,)):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ca-cert.pem"), "w") as f:
            for c in cas:
                with open(os.path.join(c, "ca-cert.pem")) as g:
                    f.write(g.read())
        me = "server" if server else "client"
        _tls_leaf(signer, os.path.join(d, me + "-cert.pem"),
                  os.path.join(d, me + "-key.pem"), cn, server, dates)
        dirs[name] = d

    folder("server", "localhost", server=True)
    folder("client", "client")
    folder("intruder", "intruder")
    folder("otherca", "client", signer=other, cas=(ca, other))
    folder("expired", "client", dates=("20200101000000Z", "20200102000000Z"))
    return dirs
