# dockgate for Linux hosts: the static (musl) binary and nothing else.
#   make image            # builds dockgate:latest with the dockerd that DOCKER_HOST names
# The build context holds only the binary (see .dockerignore): no certificate or key can end
# up in the image. Mount them at run time, read-only, with Docker's socket:
#   docker run -d --name dockgate --network host --read-only --cap-drop ALL \
#     --user 65534:$(stat -c %g /var/run/docker.sock) \
#     -v /etc/dockgate:/etc/dockgate:ro -v /var/run/docker.sock:/var/run/docker.sock \
#     dockgate:latest --tlscacert /etc/dockgate/ca.pem --tlscert /etc/dockgate/server-cert.pem \
#     --tlskey /etc/dockgate/server-key.pem --crl /etc/dockgate/crl.pem
# (README "Install" has the details: ports, --crl-url with a writable cache, metrics.)
FROM scratch
COPY target/x86_64-unknown-linux-musl/release/dockgate /dockgate
# A non-root default; `--user UID:GID` with the docker socket's group is what gives access.
USER 65534:65534
EXPOSE 2376
ENTRYPOINT ["/dockgate"]
CMD ["--help"]
