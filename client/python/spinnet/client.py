"""A typed Python client of the spinnet.v1 gRPC API.

Every method returns the API's own messages (``spinnet.v1`` protos from
:mod:`spinnet._proto`, re-exported as :data:`spinnet.client.pb`), or an
iterator of them for the streaming RPCs, and raises :class:`SpinnetError`
(the gRPC status code and message) when a call fails.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, \
    Sequence, TypeVar, Union

import grpc

from ._proto import common_pb2, dataset_pb2, inference_pb2, metrics_pb2, \
    model_pb2, sweep_pb2, training_pb2
from . import model_file
from ._proto import dataset_pb2_grpc, inference_pb2_grpc, metrics_pb2_grpc, \
    model_pb2_grpc, sweep_pb2_grpc, training_pb2_grpc


class pb:  # noqa: N801 (a namespace of the generated modules)
    """The generated message modules, by proto file."""
    common = common_pb2
    dataset = dataset_pb2
    inference = inference_pb2
    metrics = metrics_pb2
    model = model_pb2
    sweep = sweep_pb2
    training = training_pb2


class SpinnetError(Exception):
    """A failed call: `code` is the gRPC status code (grpc.StatusCode),
    `message` the server's message (or the client's, for a bad argument
    caught before sending)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


# Settings are training flags as `spinnet-train --help` names them
# ("dt-in"); values may be numbers, bools or text.
FlagValue = Union[str, int, float, bool]
R = TypeVar("R")

_ENUMS = {
    "cell": ("CELL_TYPE_", common_pb2.CellType),
    "schedule": ("LR_SCHEDULE_", common_pb2.LrSchedule),
    "precision": ("PRECISION_", common_pb2.Precision),
}


def flag_text(value: FlagValue) -> str:
    """A setting's value as the command line writes it: true/false for
    bools, the shortest exact text for floats (repr), str otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def training_spec(settings: Mapping[str, FlagValue]) -> common_pb2.TrainingSpec:
    """A TrainingSpec from training flags ({"dt-in": 0.5, "cell": "ctrnn"});
    unknown flags or bad values raise SpinnetError(INVALID_ARGUMENT)."""
    spec = common_pb2.TrainingSpec()
    for flag, value in settings.items():
        name = flag.replace("-", "_")
        field = spec.DESCRIPTOR.fields_by_name.get(name)
        if field is None:
            raise SpinnetError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"unknown training setting --{flag}")
        try:
            if name in _ENUMS:
                prefix, enum = _ENUMS[name]
                setattr(spec, name, enum.Value(prefix + str(value).upper()))
            elif field.type == field.TYPE_BOOL:
                setattr(spec, name, bool(value))
            elif field.type in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
                setattr(spec, name, float(value))
            elif field.type == field.TYPE_STRING:
                setattr(spec, name, str(value))
            else:
                setattr(spec, name, int(value))
        except (TypeError, ValueError) as e:
            raise SpinnetError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"--{flag}: {value!r}: {e}") from None
    return spec


def point_settings(sweep: sweep_pb2.Sweep,
                   point: sweep_pb2.SweepPoint) -> dict[str, str]:
    """Every setting of one grid point: the sweep's fixed flags, then the
    point's axis values (text, as submitted)."""
    out = {s.flag: s.value for s in sweep.fixed}
    out.update({s.flag: s.value for s in point.settings})
    return out


@dataclasses.dataclass(frozen=True)
class ModelFile:
    """An exported model version: its record and its model file's bytes
    (core/model_io.h, exactly as stored; spinnet.model_file.parse reads
    them)."""
    model: model_pb2.Model
    data: bytes


# Bytes per message of an ImportModel stream (the C++ client's
# kUploadChunkBytes): far below gRPC's message limits.
_CHUNK_BYTES = 32 << 10


@dataclasses.dataclass(frozen=True)
class Steps:
    """Input of stream(): one or more time steps (input_dim values each);
    `end` ends the sequence (a final answer follows)."""
    values: Sequence[float]
    end: bool = False


@dataclasses.dataclass(frozen=True)
class Reset:
    """Input of stream(): drop the current sequence, start a new one."""


StreamInput = Union[Sequence[float], Steps, Reset]


def _end_states(state_enum: Any, names: Sequence[str]) -> frozenset:
    return frozenset(state_enum.Value(n) for n in names)


_JOB_ENDED = _end_states(training_pb2.JobState, [
    "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"])
_SWEEP_ENDED = _end_states(sweep_pb2.SweepState, [
    "SWEEP_STATE_DONE", "SWEEP_STATE_CANCELLED"])


def job_ended(job: training_pb2.TrainingJob) -> bool:
    """True once the job is SUCCEEDED, FAILED or CANCELLED."""
    return job.state in _JOB_ENDED


def sweep_ended(sweep: sweep_pb2.Sweep) -> bool:
    """True once every job of the sweep has ended (DONE or CANCELLED)."""
    return sweep.state in _SWEEP_ENDED


class Client:
    """A connection to a spinnet server (or a set of replicas).

    `target` is what `spinnet --server` takes: HOST:PORT, dns:///HOST:PORT
    or ipv4:IP:PORT,IP:PORT (calls balanced round robin). `token` is sent
    as a bearer token with every call (the server's --auth-token-file);
    `tls_ca` (PEM bytes) makes the channel TLS. `timeout` [s] bounds each
    unary call; streams (watch, stream) have none.
    """

    def __init__(self, target: str, token: Optional[str] = None, *,
                 tls_ca: Optional[bytes] = None,
                 timeout: Optional[float] = 60.0) -> None:
        options = [
            ("grpc.service_config",
             '{"loadBalancingConfig": [{"round_robin": {}}]}'),
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=tls_ca)
            self._channel = grpc.secure_channel(target, creds, options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._metadata = ((("authorization", "Bearer " + token),)
                          if token else ())
        self._timeout = timeout
        self._training = training_pb2_grpc.TrainingServiceStub(self._channel)
        self._sweeps = sweep_pb2_grpc.SweepServiceStub(self._channel)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)
        self._datasets = dataset_pb2_grpc.DatasetServiceStub(self._channel)
        self._inference = inference_pb2_grpc.InferenceServiceStub(
            self._channel)
        self._metrics = metrics_pb2_grpc.MetricsServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel; calls after this fail."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # The one place where gRPC errors become SpinnetError. A client stream
    # (`request` an iterator) has no deadline, like the server streams.
    def _call(self, method: Callable[..., R], request: Any,
              deadline: bool = True) -> R:
        try:
            return method(request,
                          timeout=self._timeout if deadline else None,
                          metadata=self._metadata)
        except grpc.RpcError as e:
            raise SpinnetError(e.code(), e.details() or "") from None

    def _stream(self, method: Callable[..., Iterable[R]],
                request: Any) -> Iterator[R]:
        call = method(request, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as e:
            raise SpinnetError(e.code(), e.details() or "") from None
        finally:
            call.cancel()  # a consumer that stops early ends the call

    # --- training jobs ---------------------------------------------------

    def submit(self, model_name: str, dataset: str = "digits",
               settings: Union[Mapping[str, FlagValue],
                               common_pb2.TrainingSpec, None] = None,
               request_id: str = "") -> training_pb2.TrainingJob:
        """Queues a training job that publishes `model_name` on success.
        `settings` are training flags ({"epochs": 30, "dt-in": 0.5}) or a
        TrainingSpec; unset settings take the cell's defaults."""
        spec = (settings if isinstance(settings, common_pb2.TrainingSpec)
                else training_spec(settings or {}))
        return self._call(self._training.SubmitTrainingJob,
                          training_pb2.SubmitTrainingJobRequest(
                              request_id=request_id, model_name=model_name,
                              dataset=dataset, spec=spec))

    def get_job(self, job_id: str) -> training_pb2.TrainingJob:
        """The job's current state."""
        return self._call(self._training.GetTrainingJob,
                          training_pb2.GetTrainingJobRequest(job_id=job_id))

    def list_jobs(self, state: str = "") -> list[training_pb2.TrainingJob]:
        """Every job, newest first (all pages); `state` filters by a
        JobState name without its prefix ("running")."""
        value = (training_pb2.JobState.Value("JOB_STATE_" + state.upper())
                 if state else 0)
        jobs: list[training_pb2.TrainingJob] = []
        token = ""
        while True:
            page = self._call(self._training.ListTrainingJobs,
                              training_pb2.ListTrainingJobsRequest(
                                  page_size=500, page_token=token,
                                  state=value))
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs

    def cancel(self, job_id: str) -> training_pb2.TrainingJob:
        """Cancels the job (a running one stops at its next heartbeat)."""
        return self._call(self._training.CancelTrainingJob,
                          training_pb2.CancelTrainingJobRequest(job_id=job_id))

    def watch(self, job_id: str
              ) -> Iterator[training_pb2.WatchTrainingJobResponse]:
        """The job's snapshot, then a message per change and per finished
        epoch (`epoch` set), until the job ends."""
        return self._stream(self._training.WatchTrainingJob,
                            training_pb2.WatchTrainingJobRequest(
                                job_id=job_id))

    def wait(self, job_id: str) -> training_pb2.TrainingJob:
        """Watches the job to its end and returns it as it ended."""
        job = None
        for update in self.watch(job_id):
            job = update.job
        return job if job is not None else self.get_job(job_id)

    def training_metrics(self, job_id: str) -> list[common_pb2.EpochMetrics]:
        """The job's per-epoch metrics, in epoch order."""
        return list(self._call(self._metrics.GetTrainingMetrics,
                               metrics_pb2.GetTrainingMetricsRequest(
                                   job_id=job_id)).epochs)

    def server_stats(self) -> metrics_pb2.ServerStats:
        """Job counts, streams, models and uptime of the replica answering."""
        return self._call(self._metrics.GetServerStats,
                          metrics_pb2.GetServerStatsRequest())

    # --- sweeps ----------------------------------------------------------

    def submit_sweep(self, dataset: str,
                     axes: Mapping[str, Sequence[FlagValue]],
                     fixed: Optional[Mapping[str, FlagValue]] = None,
                     seeds: Iterable[int] = range(10),
                     model_name: Optional[str] = None,
                     request_id: Optional[str] = None) -> sweep_pb2.Sweep:
        """Queues a study: every combination of the `axes` values (flag ->
        values, first axis slowest) with the `fixed` flags, trained once
        per seed. With `model_name`, each successful job publishes a new
        version of that model."""
        request = sweep_pb2.SubmitSweepRequest(
            request_id=request_id or "", dataset=dataset,
            model_name=model_name or "", seeds=list(seeds))
        for flag, value in (fixed or {}).items():
            request.fixed.add(flag=flag, value=flag_text(value))
        for flag, values in axes.items():
            request.axes.add(flag=flag, values=[flag_text(v) for v in values])
        return self._call(self._sweeps.SubmitSweep, request)

    def get_sweep(self, sweep_id: str) -> sweep_pb2.Sweep:
        """The sweep with its points' statistics as of now."""
        return self._call(self._sweeps.GetSweep,
                          sweep_pb2.GetSweepRequest(sweep_id=sweep_id))

    def list_sweeps(self) -> list[sweep_pb2.Sweep]:
        """Every sweep, newest first (all pages)."""
        sweeps: list[sweep_pb2.Sweep] = []
        token = ""
        while True:
            page = self._call(self._sweeps.ListSweeps,
                              sweep_pb2.ListSweepsRequest(
                                  page_size=100, page_token=token))
            sweeps.extend(page.sweeps)
            token = page.next_page_token
            if not token:
                return sweeps

    def cancel_sweep(self, sweep_id: str) -> sweep_pb2.Sweep:
        """Cancels every job of the sweep that has not ended."""
        return self._call(self._sweeps.CancelSweep,
                          sweep_pb2.CancelSweepRequest(sweep_id=sweep_id))

    def watch_sweep(self, sweep_id: str) -> Iterator[sweep_pb2.Sweep]:
        """The sweep at once, then whenever one of its jobs changes, until
        every job has ended."""
        return self._stream(self._sweeps.WatchSweep,
                            sweep_pb2.WatchSweepRequest(sweep_id=sweep_id))

    # --- models and datasets ---------------------------------------------

    def list_models(self, name: str = "") -> list[model_pb2.Model]:
        """Every model version (or only `name`'s), by name then version."""
        return list(self._call(self._models.ListModels,
                               model_pb2.ListModelsRequest(name=name)).models)

    def get_model(self, name: str, version: int = 0) -> model_pb2.Model:
        """One version of a model (0: the latest)."""
        return self._call(self._models.GetModel,
                          model_pb2.GetModelRequest(name=name, version=version))

    def delete_model(self, name: str, version: int) -> None:
        """Deletes one version; it stops being served at once."""
        self._call(self._models.DeleteModel,
                   model_pb2.DeleteModelRequest(name=name, version=version))

    def export_model(self, name: str, version: int = 0) -> ModelFile:
        """One version's model file (0: the latest), exactly as stored, with
        its record. SpinnetError(DATA_LOSS) if the stream brought other
        than the byte count its header announced."""
        header = None
        chunks: list[bytes] = []
        for msg in self._stream(self._models.ExportModel,
                                model_pb2.ExportModelRequest(
                                    name=name, version=version)):
            part = msg.WhichOneof("part")
            if part == "header":
                if header is not None:
                    raise SpinnetError(grpc.StatusCode.INTERNAL,
                                       "export sent two headers")
                header = msg.header
            elif header is None:
                raise SpinnetError(grpc.StatusCode.INTERNAL,
                                   "export sent a chunk before its header")
            else:
                chunks.append(msg.chunk)
        if header is None:
            raise SpinnetError(grpc.StatusCode.INTERNAL,
                               "export ended without a header")
        data = b"".join(chunks)
        if len(data) != header.size_bytes:
            raise SpinnetError(grpc.StatusCode.DATA_LOSS,
                               f"export of {name} brought {len(data)} bytes; "
                               f"its header said {header.size_bytes}")
        return ModelFile(header.model, data)

    def import_model(self, name: str, data: bytes) -> model_pb2.Model:
        """Stores the model file `data` (of export_model or `spinnet-train
        --out`) as the next version of `name` and returns its record. The
        server checks the file first: corrupt or truncated is DATA_LOSS,
        not a model file INVALID_ARGUMENT."""
        data = bytes(data)

        def requests() -> Iterator[model_pb2.ImportModelRequest]:
            yield model_pb2.ImportModelRequest(
                header=model_pb2.ImportModelHeader(name=name,
                                                   size_bytes=len(data)))
            for at in range(0, len(data), _CHUNK_BYTES):
                yield model_pb2.ImportModelRequest(
                    chunk=data[at:at + _CHUNK_BYTES])
        return self._call(self._models.ImportModel, requests(),
                          deadline=False)

    def export_weights(self, name: str, version: int = 0
                       ) -> model_file.TrainedModel:
        """export_model parsed by spinnet.model_file: the settings and the
        weights as NumPy arrays (ValueError if the file does not parse)."""
        return model_file.parse(self.export_model(name, version).data)

    def list_datasets(self) -> list[dataset_pb2.Dataset]:
        """The built-in and uploaded datasets."""
        return list(self._call(self._datasets.ListDatasets,
                               dataset_pb2.ListDatasetsRequest()).datasets)

    def get_dataset(self, name: str) -> dataset_pb2.Dataset:
        """One dataset's description (steps, classes, sequences)."""
        return self._call(self._datasets.GetDataset,
                          dataset_pb2.GetDatasetRequest(name=name))

    # --- inference -------------------------------------------------------

    def classify(self, model: str, sequences: Iterable[Sequence[float]],
                 version: int = 0) -> inference_pb2.ClassifyResponse:
        """Classifies whole sequences (each K*d values, step k's d values
        at k*d .. k*d+d-1) in one call."""
        return self._call(self._inference.Classify,
                          inference_pb2.ClassifyRequest(
                              model=model, version=version,
                              sequences=_sequences(sequences)))

    def trace_neurons(self, model: str, sequences: Iterable[Sequence[float]],
                      neurons: Iterable[tuple[int, int]] = (),
                      version: int = 0
                      ) -> inference_pb2.TraceNeuronsResponse:
        """The outputs of `neurons` ((layer, index) pairs, 0-based; none:
        the last layer's) after every input interval of 1-16 sequences of
        one length, with each sequence's classification."""
        return self._call(self._inference.TraceNeurons,
                          inference_pb2.TraceNeuronsRequest(
                              model=model, version=version,
                              sequences=_sequences(sequences),
                              neurons=[inference_pb2.NeuronSelector(
                                  layer=layer, index=index)
                                  for layer, index in neurons]))

    def stream(self, model: str, inputs: Iterable[StreamInput],
               version: int = 0, every: int = 0
               ) -> Iterator[inference_pb2.StreamClassifyResponse]:
        """A StreamClassify session on `model`: sends `inputs` as they come
        (a plain sequence of floats is one whole sequence; Steps are steps,
        Reset resets) and yields every response: `opened` first, then
        `answer`s (provisional every `every` steps, a final one per
        sequence), in-band `error`s (the session goes on) and `closed`.
        Ends when the server has answered everything sent."""
        def requests() -> Iterator[inference_pb2.StreamClassifyRequest]:
            yield inference_pb2.StreamClassifyRequest(
                open=inference_pb2.StreamOpen(model=model, version=version,
                                              provisional_every=every))
            for item in inputs:
                if isinstance(item, Reset):
                    yield inference_pb2.StreamClassifyRequest(
                        reset=inference_pb2.StreamReset())
                    continue
                steps = item if isinstance(item, Steps) else Steps(item, True)
                yield inference_pb2.StreamClassifyRequest(
                    steps=inference_pb2.StreamSteps(
                        values=[float(v) for v in steps.values],
                        end_of_sequence=steps.end))
        return self._stream(self._inference.StreamClassify, requests())


def _sequences(sequences: Iterable[Sequence[float]]
               ) -> list[inference_pb2.Sequence]:
    return [inference_pb2.Sequence(values=[float(v) for v in s])
            for s in sequences]


__all__ = ["Client", "SpinnetError", "ModelFile", "Steps", "Reset", "pb",
           "flag_text", "training_spec", "point_settings", "job_ended", "sweep_ended"]
