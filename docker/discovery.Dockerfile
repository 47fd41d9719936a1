# The discovery sidecar (discovery-svc): DNS, seeds and gossip; keeps members.json in /data.
# Built FROM scratch by docker/build-images.sh (see store.Dockerfile for the layout).
FROM scratch
COPY discovery-svc /discovery-svc
COPY --chown=65534:65534 data /data
COPY --chown=65534:65534 tmp /tmp
USER 65534:65534
ENV DATA_DIR=/data \
    DISCOVERY_LISTEN=0.0.0.0:7100 \
    TMPDIR=/tmp \
    LOG_FORMAT=json
EXPOSE 7100
VOLUME ["/data"]
# A signed Members call to the local agent: it answers as soon as the agent serves.
HEALTHCHECK --interval=5s --timeout=4s --start-period=15s --retries=3 \
    CMD ["/discovery-svc", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/discovery-svc"]
