#!/usr/bin/env bash
# Builds a container image of the service from a rapidflow binary, on a minimal base made
# here (nothing is pulled): the binary and every shared library `ldd` names for it, bash and
# static busybox (for the shell steps of pipelines run with `--executor shell`), CA
# certificates, and a data directory at /var/lib/rapidflow.
#
#   scripts/build-image.sh [--binary PATH] [--tag NAME:TAG]
#
# Default binary: the release build (.build-release/release/rapidflow, built first when
# missing, about 20 minutes on 2 cores). Default tag: rapidflow:<version>.
# The image runs `rapidflow serve --host 0.0.0.0 --data-dir /var/lib/rapidflow`; put a
# volume on /var/lib/rapidflow and pass other settings as RAPIDFLOW_* variables or a
# --config file mounted into the container.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=
tag=
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "build-image: unknown argument '$1' (use --binary PATH, --tag NAME:TAG)" >&2; exit 2 ;;
  esac
done
if [ -z "$binary" ]; then
  binary=.build-release/release/rapidflow
  [ -x "$binary" ] || swift build -c release --build-path .build-release --product rapidflow >&2
fi
[ -x "$binary" ] || { echo "build-image: $binary is not an executable" >&2; exit 1; }
for tool in docker ldd busybox bash; do
  command -v "$tool" >/dev/null || { echo "build-image: needs $tool (apt-get install -y docker.io busybox-static)" >&2; exit 1; }
done
version=$("$binary" --version | awk '{print $2}')
tag=${tag:-rapidflow:$version}

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root=$context/root
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/tmp" "$root/var/lib/rapidflow" "$root/etc/ssl/certs"
chmod 1777 "$root/tmp"
cp "$binary" "$root/usr/local/bin/rapidflow"
# Symbols and debug information are of no use in the image, and most of the binary's size.
if command -v strip >/dev/null; then strip --strip-debug "$root/usr/local/bin/rapidflow"; fi
cp "$(command -v bash)" "$root/bin/bash"
cp "$(command -v busybox)" "$root/bin/busybox"

# Every library the binary and bash load, at the path the loader looks for it, and the loader.
for program in "$binary" "$(command -v bash)"; do
  ldd "$program" | awk '/=> \//{print $3} /^\s*\/[^ ]*ld-linux/{print $1}' | while read -r library; do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done
done
# Debian's loader path: /lib64 points into /lib/x86_64-linux-gnu.
if [ -e /lib64/ld-linux-x86-64.so.2 ] && [ ! -e "$root/lib64/ld-linux-x86-64.so.2" ]; then
  mkdir -p "$root/lib64"
  cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
fi
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"

cat > "$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/bin HOME=/var/lib/rapidflow
EXPOSE 3000
VOLUME /var/lib/rapidflow
ENTRYPOINT ["/usr/local/bin/rapidflow"]
CMD ["serve", "--host", "0.0.0.0", "--data-dir", "/var/lib/rapidflow", "--executor", "shell"]
DOCKERFILE

DOCKER_BUILDKIT=0 docker build -q -t "$tag" --label "org.opencontainers.image.version=$version" "$context" >/dev/null
echo "$tag"
