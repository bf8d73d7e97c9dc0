#!/bin/sh
# Regenerates the archive fixtures of packages_test.go (needs python3, gzip,
# xz, bzip2, zstd, zip). Names here say what each file is; the tests upload
# them under misleading names.
set -eu
cd "$(dirname "$0")"
python3 - <<'PY'
import io, tarfile
def tar(path, entries):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
tar("benign.tar", [("opt/app/bin", "reg", b"x"), ("etc/app.conf", "reg", b"y")])
tar("dotdot.tar", [("ok", "reg", b"x"), ("../x", "reg", b"x")])
tar("absolute.tar", [("/etc/cron.d/x", "reg", b"x")])
tar("symlink.tar", [("etc", "sym", "/etc"), ("etc/cron.d/x", "reg", b"x")])
PY
zip_escape() { python3 -c 'import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],"w"); z.writestr(sys.argv[2],"x"); z.close()' "$@"; }
zip_escape escape.zip ../../x
zip_escape backslash.zip '..\..\x'
zip_escape benign.zip opt/app/bin
for t in benign dotdot absolute symlink; do
	gzip -9nc "$t.tar" >"$t.tar.gz"
	xz -9c "$t.tar" >"$t.tar.xz"
	bzip2 -9c "$t.tar" >"$t.tar.bz2"
	zstd -q -19c "$t.tar" >"$t.tar.zst"
done
printf 'just some text, compressed\n' | gzip -9nc >text.gz
rm -f dotdot.tar absolute.tar

# The seed corpus of FuzzCheckArchive: every fixture, plus xz with a small
# dictionary (the fuzz limits allow a 1 MiB window), in Go's corpus format.
xz -0c benign.tar >small-dict.tar.xz.tmp
python3 - <<'PY'
import glob, os, tarfile, io
out = "../fuzz/FuzzCheckArchive"
os.makedirs(out, exist_ok=True)
for f in glob.glob(os.path.join(out, "*")):
    os.remove(f)
def quote(b):
    s = []
    for c in b:
        if c == 0x22: s.append('\\"')
        elif c == 0x5c: s.append('\\\\')
        elif 0x20 <= c < 0x7f: s.append(chr(c))
        else: s.append('\\x%02x' % c)
    return ''.join(s)
def write(name, data):
    with open(os.path.join(out, name), "w") as f:
        f.write('go test fuzz v1\n[]byte("%s")\n' % quote(data))
for path in sorted(glob.glob("*")):
    if path == "make.sh":
        continue
    data = open(path, "rb").read()
    # Plain tars are mostly zero padding: keep the corpus small.
    if path.endswith(".tar"):
        data = data.rstrip(b"\0") + b"\0" * (-len(data.rstrip(b"\0")) % 512 + 1024)
    write(path.replace(".tmp", ""), data)
write("empty", b"")
write("not-an-archive", b"#!/bin/sh\necho hi\n")
PY
rm -f small-dict.tar.xz.tmp
