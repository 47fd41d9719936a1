# The end-to-end client (deploy/e2e-client): run with `docker run --rm --network agenda_net`.
# Built FROM scratch by docker/build-images.sh.
FROM scratch
COPY agenda-e2e /agenda-e2e
USER 65534:65534
ENTRYPOINT ["/agenda-e2e"]
CMD ["help"]
