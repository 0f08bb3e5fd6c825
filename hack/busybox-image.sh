#!/usr/bin/env bash
# Builds a docker-archive tarball of a busybox image from Debian's
# busybox-static, for hosts that cannot reach Docker Hub:
#   hack/busybox-image.sh OUT.tar [TAG]
set -euo pipefail
out=$1; tag=${2:-busybox:local}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/etc" "$work/root/tmp" "$work/root/www"
cp /bin/busybox "$work/root/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$work/root/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$work/root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/root/etc/group"
echo '<h1>Welcome to Skiff</h1>' > "$work/root/www/index.html"
chmod 1777 "$work/root/tmp"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -C "$work/root" -cf "$work/layer.tar" .
diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:$diff"]}}
JSON
echo "[{\"Config\":\"config.json\",\"RepoTags\":[\"$tag\"],\"Layers\":[\"layer.tar\"]}]" > "$work/manifest.json"
tar -C "$work" -cf "$out" manifest.json config.json layer.tar
echo "$out"
