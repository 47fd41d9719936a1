# The store sidecar (consensus-svc): openraft node + SQLite, FROM scratch.
#
# Built by docker/build-images.sh from a context holding only the static binary and two
# empty folders (no base image can be pulled on the build machines). The classic builder
# is enough: there is no RUN step.
FROM scratch
COPY consensus-svc /consensus-svc
# /data and /tmp are owned by `nobody` so the service runs unprivileged: a fresh named
# volume mounted on /data takes the ownership of the image's folder (Docker's copy-up),
# and SQLite may need a temporary folder for large sorts. /backups likewise, for the
# stack's backup volume (BACKUP_DIR).
COPY --chown=65534:65534 data /data
COPY --chown=65534:65534 data /backups
COPY --chown=65534:65534 tmp /tmp
USER 65534:65534
ENV DATA_DIR=/data \
    GRPC_LISTEN=0.0.0.0:7000 \
    TMPDIR=/tmp \
    SQLITE_TMPDIR=/tmp \
    LOG_FORMAT=json
EXPOSE 7000
VOLUME ["/data"]
# A signed Status call to the local store; it does not need a leader, so a cluster that
# lost quorum keeps its containers (a restart would not bring quorum back).
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=3 \
    CMD ["/consensus-svc", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/consensus-svc"]
