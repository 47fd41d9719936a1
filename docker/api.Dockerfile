# The API front (api-svc): REST, WebSocket and the embedded web UI. Stateless: no volume.
# Built FROM scratch by docker/build-images.sh (see store.Dockerfile for the layout).
FROM scratch
COPY api-svc /api-svc
COPY --chown=65534:65534 tmp /tmp
USER 65534:65534
ENV HTTP_LISTEN=0.0.0.0:8080 \
    TMPDIR=/tmp \
    LOG_FORMAT=json
EXPOSE 8080
# GET /healthz on 127.0.0.1: the process serves (it does not need a store or a leader;
# /readyz is the one that does).
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \
    CMD ["/api-svc", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/api-svc"]
