# The one image of gateway-dask-zarr: the web app (gunicorn) and, set as the Dask Gateway's
# backend image, its schedulers and workers, so they never disagree on dask, distributed,
# zarr, numpy, s3fs or the project's task code (gateway_dask_zarr/worker/blocks.py).
# checkov:skip=CKV_DOCKER_2:no HEALTHCHECK: Kubernetes ignores it and probes /healthz and /readyz (deploy_gateway.yaml); the same image runs Dask schedulers and workers, which serve no /healthz
FROM python:3.11.14-slim-bookworm

# tini is PID 1: it forwards SIGTERM to gunicorn (whose worker_exit hook shuts the Dask
# cluster down) and reaps zombies. The version is bookworm's, as the base image is.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*

# A fixed, high uid/gid: deploy_gateway.yaml runs the pod as 10001 with runAsNonRoot.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /app

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY gunicorn.conf.py app.py ./
COPY gateway_dask_zarr/ ./gateway_dask_zarr/
# Compiled now, as root: at run time the root filesystem is read-only.
RUN python -m compileall -q gunicorn.conf.py app.py gateway_dask_zarr

# Smoke check at build: the package, the worker-side code and gunicorn's settings import
# (not app.py: it would start a Dask cluster), and the commands the Dask Gateway runs
# (dask/dask-gateway#945: `dask scheduler` / `dask worker`, not dask-scheduler) exist.
RUN python -c "import runpy, gateway_dask_zarr, gateway_dask_zarr.server.api, gateway_dask_zarr.worker.blocks, dask_gateway.scheduler_preload; runpy.run_path('gunicorn.conf.py')" \
    && dask scheduler --help > /dev/null \
    && dask worker --help > /dev/null

USER 10001:10001
EXPOSE 8000

ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
