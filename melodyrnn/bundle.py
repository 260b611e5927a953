"""The one-file saved model: `save_bundle` / `load_bundle` / `load`, and `read_bundle_metadata` for a bundle's
training metadata without building its model.

A bundle is a zip holding bundle.json (format, configs, metadata) and model.keras (Keras's own format). Loading
runs in Keras safe mode after a scan that refuses anything not melodyrnn's or Keras's own. Start with `load`.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

# Safe-mode loading finds classes by their registered names, so every melodyrnn class a saved model may name must
# be registered (imported) before `keras.saving.load_model` runs, not only the ones this module uses.
from melodyrnn import attention, layers, lookback  # noqa: F401
from melodyrnn.archives import check_members
from melodyrnn.encoding import EncodingConfig
from melodyrnn.errors import BundleError, MelodyRNNError
from melodyrnn.files import atomic_write
from melodyrnn.model import MelodyModel, ModelConfig

__all__ = [
    "Bundle",
    "save_bundle",
    "load_bundle",
    "load",
    "read_bundle_metadata",
    "read_bundle_task",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "DEFAULT_BUNDLE_PATH",
    "MELODY_TASK",
    "save_task_bundle",
    "load_task_bundle",
]

BUNDLE_FORMAT = "melodyrnn-bundle"
BUNDLE_VERSION = 1
DEFAULT_BUNDLE_PATH = Path(__file__).parent / "pretrained" / "default.melodyrnn"
_PACKAGE = "melodyrnn"  # the package of every melodyrnn registered name, "melodyrnn>Class"
_MODEL_MEMBER = "model.keras"
_JSON_MEMBER = "bundle.json"
# A member may claim at most this many bytes: the largest model `ModelConfig.limits` allows that anyone would
# train here is far below it, and it bounds what a hostile bundle can make us decompress.
_MAX_MEMBER_BYTES = 1 << 30
_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# Older Keras releases let a crafted model file run code even in safe mode (published advisories through 3.13).
_SAFE_KERAS = (3, 14)
#: The `task` a melody model's bundle.json names; bundles written before tasks existed are melody models too.
MELODY_TASK = "melody"


def _keras_version() -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", keras.__version__)[:2])


@dataclass
class Bundle:
    """Everything needed to sample, score or fine-tune.

    Attributes:
        model: the `MelodyModel`, compiled with its optimizer state if the bundle was saved compiled.
        model_config: its `ModelConfig`.
        encoding: the `EncodingConfig` its token ids mean.
        metadata: training metadata (data summary, metrics, ...) plus `created` (ISO date) and `versions`.
        path: the file it came from.
    """

    model: MelodyModel
    model_config: ModelConfig
    encoding: EncodingConfig
    metadata: dict = field(default_factory=dict)
    path: str = ""


def _library_versions() -> dict:
    from importlib import metadata

    from melodyrnn import __version__

    versions = {
        "melodyrnn": __version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
    }
    for package in ("tensorflow", "jax", "torch"):  # whichever backend is installed, without importing it
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _json_default(obj):
    # metrics are often numpy scalars or arrays
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def save_bundle(
    path: str | os.PathLike,
    model: MelodyModel,
    config: ModelConfig | None = None,
    encoding: EncodingConfig = EncodingConfig(),
    metadata: dict | None = None,
) -> Path:
    """Writes the model, its configs and metadata to ONE file, atomically.

    The file is a zip of `bundle.json` and `model.keras` (Keras's own format, with the optimizer state when the
    model is compiled). It is written to a temporary file in the same folder and then renamed over `path`, so a
    crash never leaves a half-written bundle.

    Args:
        path: the bundle file to write (suggested suffix `.melodyrnn`).
        model: a `MelodyModel`.
        config: its `ModelConfig`; defaults to `model.config` and must equal it.
        encoding: the `EncodingConfig` of its token ids; its `vocab_size` must equal the model's.
        metadata: JSON-ready training metadata (numpy scalars and arrays are converted). `created` and
            `versions` (melodyrnn, keras, tensorflow, numpy) are added.

    Returns:
        The path written.

    Raises:
        MelodyRNNError: not a `MelodyModel`, configs that disagree, or metadata that is not JSON-ready.
    """
    if not isinstance(model, MelodyModel):
        raise MelodyRNNError(f"`model` must be a melodyrnn MelodyModel, got {type(model).__name__}")
    config = model.config if config is None else config
    if config != model.config:
        raise MelodyRNNError(f"`config` must equal the model's own config {model.config}, got {config}")
    if not isinstance(encoding, EncodingConfig):
        raise MelodyRNNError(f"`encoding` must be an EncodingConfig, got {type(encoding).__name__}")
    if encoding.vocab_size != config.vocab_size:
        raise MelodyRNNError(
            f"`encoding` must have vocab_size={config.vocab_size} (the model's), got {encoding.vocab_size}"
        )
    header = {"task": MELODY_TASK, "model_config": config.to_dict(), "encoding_config": encoding.to_dict()}
    what = "`metadata` must be JSON-ready (numbers, strings, lists, dicts)"
    return _write_bundle(path, model, header, metadata, what)


def _write_bundle(path, model: keras.Model, fields: dict, metadata: dict | None, what: str) -> Path:
    """The one writer of bundle files: `fields` (task and configs) and `metadata` (with `created` and `versions`
    added) in bundle.json beside the model's `model.keras`, atomically. `what` opens the error for JSON that is not
    ready."""
    metadata = dict(metadata or {})
    metadata.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    metadata["versions"] = _library_versions()
    path = Path(path)
    (path.parent if str(path.parent) else Path(".")).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        keras_path = Path(scratch) / _MODEL_MEMBER
        model.save(keras_path)
        model_bytes = keras_path.read_bytes()
    header = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        **fields,
        "metadata": metadata,
        "files": {_MODEL_MEMBER: {"bytes": len(model_bytes), "sha256": hashlib.sha256(model_bytes).hexdigest()}},
    }
    try:
        header_text = json.dumps(header, indent=2, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise MelodyRNNError(f"{what}: {err}") from err

    def write(f) -> None:
        with zipfile.ZipFile(f, "w") as zf:
            zf.writestr(_JSON_MEMBER, header_text, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(_MODEL_MEMBER, model_bytes, compress_type=zipfile.ZIP_STORED)  # already a zip

    atomic_write(path, write)
    return path


def _unsafe_objects(node, found: list) -> list:
    """Names of objects in a Keras config that are not Keras's own or melodyrnn's registered classes.

    Keras imports an object's `module` while deserializing it, so the module is checked as well as the registered
    name: Keras objects must come from `keras` itself, and ours must be registered melodyrnn classes named
    consistently ("melodyrnn>Class" from a melodyrnn module).
    """
    if isinstance(node, dict):
        if "class_name" in node:
            name, module = node.get("class_name"), node.get("module") or ""
            registered = node.get("registered_name")
            ours = (
                isinstance(module, str)
                and (module == _PACKAGE or module.startswith(f"{_PACKAGE}."))
                and registered == f"{_PACKAGE}>{name}"
                and keras.saving.get_registered_object(registered) is not None
            )
            keras_own = (
                isinstance(module, str)
                and (module == "keras" or module.startswith("keras."))
                and (registered is None or (isinstance(registered, str) and ">" not in registered))
            )
            if name in ("Lambda", "__lambda__") or not (ours or keras_own):
                found.append(f"{module}.{name}" if module else str(name))
        for value in node.values():
            _unsafe_objects(value, found)
    elif isinstance(node, list):
        for value in node:
            _unsafe_objects(value, found)
    return found


def _weight_bytes_lower_bound(config: ModelConfig) -> int:
    """Bytes the weights of `config` take at the least (float32 recurrent kernels and the output layer alone),
    to catch a config that claims a far larger network than the weights it comes with."""
    recurrent = config.num_layers * _GATES[config.cell] * config.units * config.units
    return 4 * (recurrent + config.units * config.vocab_size)


def _read_members(path: Path, *, with_model: bool = True) -> tuple[dict, bytes]:
    """The checked header of bundle.json and, `with_model`, the checksummed bytes of model.keras (else empty).

    Raises:
        BundleError: as `load_bundle`, for everything short of the model itself.
    """
    model_bytes = b""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _JSON_MEMBER not in names:
                raise BundleError(f"{path} is not a melodyrnn bundle: it has no {_JSON_MEMBER}")
            if _MODEL_MEMBER not in names:
                raise BundleError(f"{path} is incomplete: it has no {_MODEL_MEMBER}")
            problem = check_members(zf, _MAX_MEMBER_BYTES, 2 * _MAX_MEMBER_BYTES)
            if problem:
                raise BundleError(f"{path} is refused: {problem}")
            header_bytes = zf.read(_JSON_MEMBER)
            if with_model:
                model_bytes = zf.read(_MODEL_MEMBER)
    except BundleError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError) as err:
        if isinstance(err, FileNotFoundError):
            raise BundleError(f"no bundle at {path}: the file does not exist") from err
        raise BundleError(f"{path} is not a melodyrnn bundle, or it is corrupt or truncated: {err}") from err
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is corrupt: {_JSON_MEMBER} is not valid JSON ({err})") from err
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a melodyrnn bundle: its {_JSON_MEMBER} does not say format={BUNDLE_FORMAT!r}")
    version = header.get("format_version")
    if version != BUNDLE_VERSION:
        raise BundleError(
            f"{path} has bundle format version {version!r}; this melodyrnn reads version "
            f"{BUNDLE_VERSION} (upgrade melodyrnn, or re-save the model with this version)"
        )
    files = header.get("files") or {}
    expected = files.get(_MODEL_MEMBER) or {} if isinstance(files, dict) else None
    checksum = expected.get("sha256") if isinstance(expected, dict) else None
    if expected is None or not isinstance(expected, dict) or not isinstance(checksum, (str, type(None))):
        raise BundleError(f"{path} is corrupt: the `files` entry of its {_JSON_MEMBER} is not a map of checksums")
    if with_model and checksum and hashlib.sha256(model_bytes).hexdigest() != checksum:
        raise BundleError(f"{path} is corrupt: {_MODEL_MEMBER} does not match its checksum")
    return header, model_bytes


def read_bundle_metadata(path: str | os.PathLike) -> dict | None:
    """A bundle's metadata (training state, data summary, `created`, `versions`, ...) from its bundle.json alone:
    the model is neither read nor built, so this is quick whatever the model's size.

    Args:
        path: the bundle file.

    Returns:
        The metadata dict (empty when the bundle has none), or None when `path` is missing or is not a readable
        bundle of this format version.
    """
    try:
        header, _ = _read_members(Path(path), with_model=False)
    except BundleError:
        return None
    return header.get("metadata") or {}


def read_bundle_encoding(path: str | os.PathLike) -> EncodingConfig | None:
    """The encoding a bundle's model reads, from its bundle.json alone (quick, like `read_bundle_metadata`), or
    None when `path` is not a readable bundle or its encoding config is unusable."""
    try:
        header, _ = _read_members(Path(path), with_model=False)
        return EncodingConfig.from_dict(header.get("encoding_config"))
    except (MelodyRNNError, TypeError):
        return None


def read_bundle_task(path: str | os.PathLike) -> str | None:
    """The task a bundle's model does ("melody", "harmonize", "infill"), from its bundle.json alone (quick, like
    `read_bundle_metadata`), or None when `path` is not a readable bundle."""
    try:
        header, _ = _read_members(Path(path), with_model=False)
    except BundleError:
        return None
    task = header.get("task", MELODY_TASK)
    return task if isinstance(task, str) else None


def _check_task(path: Path, header: dict, task: str) -> None:
    """Raises `BundleError` when the bundle's `task` is not `task` (a harmonizer passed as a melody model...)."""
    found = header.get("task", MELODY_TASK)
    if found != task:
        uses = {MELODY_TASK: "melodyrnn.load / generate", "harmonize": "melodyrnn.harmonize",
                "infill": "melodyrnn.infill / score_infill / vary"}  # fmt: skip
        raise BundleError(
            f"{path} holds a {found!r} model, not a {task!r} model: use it with {uses.get(found, 'its own task')}"
        )


def _load_keras_model(path: Path, model_bytes: bytes, compile: bool, declared: int):
    """The checked model.keras of a bundle, loaded in safe mode; `declared`: the least bytes its weights must take.

    Raises:
        BundleError: as `load_bundle`.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as inner:
            problem = check_members(inner, _MAX_MEMBER_BYTES, _MAX_MEMBER_BYTES)
            if problem:
                raise BundleError(f"{path} is refused: in {_MODEL_MEMBER}, {problem}")
            weight_bytes = sum(i.file_size for i in inner.infolist() if i.filename.endswith(".h5"))
            keras_config = json.loads(inner.read("config.json").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as err:
        raise BundleError(f"{path} is corrupt: {_MODEL_MEMBER} is not a Keras model file ({err})") from err
    if weight_bytes < declared:
        # checked before Keras builds anything: a small file must not make us allocate a huge network
        raise BundleError(
            f"{path} is corrupt: its config declares a network of at least {declared:,} bytes of weights, but it holds "
            f"{weight_bytes:,}"
        )
    unsafe = _unsafe_objects(keras_config, [])
    if unsafe:
        raise BundleError(
            f"{path} is refused: it holds objects that are not melodyrnn's or Keras's own "
            f"({', '.join(sorted(set(unsafe)))}), which could run arbitrary code"
        )

    with tempfile.TemporaryDirectory() as scratch:
        keras_path = Path(scratch) / _MODEL_MEMBER
        keras_path.write_bytes(model_bytes)
        try:
            model = keras.saving.load_model(keras_path, compile=compile, safe_mode=True)
        except Exception as err:  # Keras raises many types for bad files; all mean "this bundle is unusable"
            if "safe_mode" in str(err) or "unsafe" in str(err).lower():
                raise BundleError(f"{path} is refused: Keras safe mode would not load it ({err})") from err
            raise BundleError(f"{path} is corrupt: its model could not be loaded ({err})") from err
    return model


def load_bundle(path: str | os.PathLike, *, compile: bool = True) -> Bundle:
    """Loads a bundle written by `save_bundle`, in Keras safe mode, on whatever device TensorFlow uses.

    Args:
        path: the bundle file.
        compile: restore the loss and optimizer (with its state) when the bundle was saved compiled, so
            `model.fit` resumes where it stopped.

    Returns:
        A `Bundle`.

    Raises:
        BundleError: the file is missing, not a zip, truncated, corrupt, foreign, of another format version,
            or holds content that is not melodyrnn's or Keras's own (a `Lambda` layer, an unknown class):
            such content is refused, never run.
    """
    path = Path(path)
    if _keras_version() < _SAFE_KERAS:
        raise BundleError(
            f"loading bundles needs Keras >= {'.'.join(map(str, _SAFE_KERAS))}, whose safe mode "
            f"refuses code in model files; this is Keras {keras.__version__} (pip install -U keras)"
        )
    header, model_bytes = _read_members(path)
    _check_task(path, header, MELODY_TASK)
    try:
        model_config = ModelConfig.from_dict(header.get("model_config"))
        encoding = EncodingConfig.from_dict(header.get("encoding_config"))
    except (MelodyRNNError, TypeError, ValueError) as err:
        raise BundleError(f"{path} is corrupt: bad configs in {_JSON_MEMBER} ({err})") from err
    metadata = header.get("metadata") or {}

    model = _load_keras_model(path, model_bytes, compile, _weight_bytes_lower_bound(model_config))
    if not isinstance(model, MelodyModel):
        raise BundleError(f"{path} is not a melodyrnn bundle: its model is a {type(model).__name__}, not a MelodyModel")
    if model.config != model_config:
        raise BundleError(
            f"{path} is corrupt: the model's config {model.config} differs from the one in "
            f"{_JSON_MEMBER} {model_config}"
        )
    if encoding.vocab_size != model_config.vocab_size:
        raise BundleError(
            f"{path} is corrupt: encoding vocab_size {encoding.vocab_size} differs from the "
            f"model's {model_config.vocab_size}"
        )
    return Bundle(model=model, model_config=model_config, encoding=encoding, metadata=metadata, path=str(path))


def load(path: str | os.PathLike | None = None, *, compile: bool = True) -> Bundle:
    """Loads a bundle, or with no argument the default model shipped in `melodyrnn/pretrained/`.

    Args:
        path: a bundle file, or None for the default model.
        compile: as `load_bundle`.

    Returns:
        A `Bundle`: `.model`, `.model_config`, `.encoding`, `.metadata`, `.path`.

    Raises:
        BundleError: as `load_bundle`; for `path=None`, when no default model is bundled with this install.

    Example:
        >>> bundle = melodyrnn.load("folk.melodyrnn")
        >>> logits = bundle.model(ids)          # ids int32 (batch, steps) → (batch, steps, vocab)
    """
    if path is None:
        if not DEFAULT_BUNDLE_PATH.is_file():
            raise BundleError(
                f"the default model is not yet bundled with this install (expected "
                f"{DEFAULT_BUNDLE_PATH}); pass the path of a bundle file"
            )
        path = DEFAULT_BUNDLE_PATH
    return load_bundle(path, compile=compile)


def save_task_bundle(
    path: str | os.PathLike, model: keras.Model, task: str, config: dict, metadata: dict | None
) -> Path:
    """Writes a model of another task than melody generation (the harmonizer) as one bundle file, atomically.

    Like `save_bundle`'s file, with `task` in bundle.json, so each loader refuses the other's models, and the
    task's own JSON-ready `config` (its sizes and vocabulary) instead of the melody model's configs.

    Args:
        path: the file to write.
        model: the Keras model (melodyrnn's and Keras's own layers only, so it loads in safe mode).
        task: what it does, e.g. "harmonize"; not `MELODY_TASK`.
        config: the task's settings; metadata: JSON-ready training metadata (`created`, `versions` added).

    Raises:
        MelodyRNNError: `task` is the melody task, or `config`/`metadata` are not JSON-ready.
    """
    if not isinstance(task, str) or task == MELODY_TASK:
        raise MelodyRNNError(f"`task` must name a task other than {MELODY_TASK!r} (use save_bundle), got {task!r}")
    return _write_bundle(path, model, {"task": task, "task_config": config}, metadata,
                         "`config` and `metadata` must be JSON-ready")  # fmt: skip


def load_task_bundle(path: str | os.PathLike, task: str) -> tuple[keras.Model, dict, dict]:
    """Loads a bundle written by `save_task_bundle` in Keras safe mode (uncompiled), after the same checks as
    `load_bundle`.

    Returns:
        `(model, config, metadata)`.

    Raises:
        BundleError: as `load_bundle`, and when the bundle holds a model of another task (a melody model).
    """
    path = Path(path)
    if _keras_version() < _SAFE_KERAS:
        raise BundleError(f"loading bundles needs Keras >= {'.'.join(map(str, _SAFE_KERAS))}, got {keras.__version__}")
    header, model_bytes = _read_members(path)
    _check_task(path, header, task)
    config = header.get("task_config")
    if not isinstance(config, dict):
        raise BundleError(f"{path} is corrupt: its {_JSON_MEMBER} has no `task_config` map")
    model = _load_keras_model(path, model_bytes, False, 0)
    return model, config, header.get("metadata") or {}
