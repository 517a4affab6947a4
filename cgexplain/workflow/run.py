"""The run folder: every path of a pipeline run, the input hashes of its stages, reuse of
finished stages from sibling runs, and the one reader of CG trajectories.

Layout (one sub-folder per stage; its ``done`` file is written last, so its presence means the
stage finished)::

    <run>/
      reference/   topology.pdb, trajectory.trr, reference.json (done), check.json, native.pdb (proteins)
      cg/          mapped.npz, topology.pdb, dataset.db, mapping.json (done)
      model/       model.pt, model.json, priors.json (proteins), training.json (done), checkpoints/
      simulation/  trajectory.dcd or trajectory_rXX.dcd, log.npz, simulation.json (done), mutant_<spec>/
      analysis/    structure.npz or protein.npz, analysis.json (done)
      lrp/         frame_XXXX.npz, nbody_statistics.npz (fluids) or frames/ (proteins), mutation.npz, lrp.json (done)
      figures/     every PNG of the run
      summary.json

Each stage folder holds ``inputs.json`` with the hash of the configuration sections it depends
on (:data:`DEPENDS_ON`). A rerun with the same hash reuses or resumes the folder; a changed hash
clears it. Keys that say how a stage computes rather than what (:data:`EXECUTION_KEYS`)
do not enter the hash.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from cgexplain.distributed import is_main_process, wait_for
from cgexplain.fileio import read_json, write_json
from cgexplain.lrp.sources import TrajectoryFrames
from cgexplain.md.langevin import trajectory_paths
from cgexplain.settings import section_hash

__all__ = ["RunFolder", "RunFolderError", "OWNER_FILE", "STAGES", "FOLDERS", "DONE_FILES", "DEPENDS_ON", "EXECUTION_KEYS", "extra_inputs"]

#: section -> keys added after run folders existed, with their defaults: left out of the input
#: hash while at the default (the MACE keys for a PaiNN or SO3net model, AMSGrad off)
LATER_KEYS: dict[str, dict] = {
    "model": {"correlation": 2, "n_types": None, "avg_num_neighbors": None},
    "training": {"amsgrad": False, "hold_out": None},
    "simulation": {"prior_replicas": None},
    "mapping": {"beads": None},
    "lrp": {"rule": "publication"},
    # how the reference runs, not what it holds (kept in the hash when set, as when it was introduced)
    "reference": {"processes": 1},
}

#: the stages in order
STAGES = ("reference", "map", "train", "simulate", "analyse", "explain")

#: stage -> its sub-folder of the run folder
FOLDERS = {"reference": "reference", "map": "cg", "train": "model", "simulate": "simulation", "analyse": "analysis", "explain": "lrp"}

#: stage -> the file it writes last, inside its folder
DONE_FILES = {
    "reference": "reference.json",
    "map": "mapping.json",
    "train": "training.json",
    "simulate": "simulation.json",
    "analyse": "analysis.json",
    "explain": "lrp.json",
}

#: stage -> the configuration sections its outputs depend on (its own and every earlier stage's)
DEPENDS_ON = {
    "reference": ("reference",),
    "map": ("reference", "mapping"),
    "train": ("reference", "mapping", "priors", "model", "training"),
    "simulate": ("reference", "mapping", "priors", "model", "training", "simulation"),
    "analyse": ("reference", "mapping", "priors", "model", "training", "simulation", "analysis"),
    "explain": ("reference", "mapping", "priors", "model", "training", "simulation", "analysis", "lrp"),
}


def extra_inputs(cfg: dict, stage: str) -> dict:
    """Keys of a later section that ``stage`` or an earlier stage reads too, as {section: {key:
    value}}: the protein's mutant simulation runs in the simulate stage from ``lrp.mutations`` and
    ``lrp.mutant_simulation_steps``, so changing them gives a new simulation, and every stage after
    it (which reads the simulate stage's outputs) starts afresh too. Empty when no stage reads
    them (no mutant simulation), so such runs keep their hashes."""
    if STAGES.index(stage) < STAGES.index("simulate"):
        return {}
    lrp = cfg.get("lrp") or {}
    steps = int(lrp.get("mutant_simulation_steps") or 0)
    if steps <= 0 or not lrp.get("mutations"):
        return {}
    return {"lrp": {"mutations": lrp["mutations"], "mutant_simulation_steps": steps}}


#: keys that say how a stage computes, not what: the CLI may override them, and they do not
#: enter the run folder's input hashes, so a model trained on 4 GPUs is reused by a rerun on a
#: laptop (training.json records the world size)
EXECUTION_KEYS = {
    "mapping": ("check_length_scale",),
    "training": ("accelerator", "devices", "num_nodes", "strategy", "data_path"),
    "simulation": ("device",),
    "lrp": ("workers", "device", "backend"),
}

#: the file at the root of a run folder that names the system it belongs to
OWNER_FILE = "run.json"


class RunFolderError(ValueError):
    """A run folder that cannot be used: it belongs to another system, an earlier stage in it was
    made from other inputs, or it cannot be written. The message names the folder."""


#: stages whose folder does not depend on the architecture: another run folder beside this one
#: (e.g. the PaiNN run of the same system and profile) may lend a finished copy
_SHAREABLE = ("reference", "map")


class RunFolder:
    """Every path of one pipeline run.

    root: the run folder (created on first write). Paths are attributes (``run.mapped``,
    ``run.cg_topology``, ...) or per stage (:meth:`folder`, :meth:`done_file`). Nothing outside
    this class builds run-folder paths.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    @classmethod
    def default(cls, cfg: dict) -> RunFolder:
        """``runs/<system>-<profile>`` under the current directory, with ``-<arch>`` for an
        architecture other than PaiNN."""
        arch = cfg.get("arch", "painn")
        return cls(Path("runs") / (f"{cfg['name']}-{cfg['profile']}" + ("" if arch == "painn" else f"-{arch}")))

    # ------------------------------------------------------------ per stage
    def folder(self, stage: str) -> Path:
        """The sub-folder of ``stage`` (one of :data:`STAGES`). Raises KeyError for another name."""
        if stage not in FOLDERS:
            raise KeyError(f"unknown stage {stage!r}; stages: {list(STAGES)}")
        return self.root / FOLDERS[stage]

    def done_file(self, stage: str) -> Path:
        """The file ``stage`` writes last; it exists once the stage has finished."""
        return self.folder(stage) / DONE_FILES[stage]

    def is_done(self, stage: str) -> bool:
        return self.done_file(stage).exists()

    # ------------------------------------------------------------ named files
    @property
    def reference(self) -> Path:
        return self.folder("reference")

    @property
    def reference_topology(self) -> Path:
        return self.reference / "topology.pdb"

    @property
    def reference_trajectory(self) -> Path:
        return self.reference / "trajectory.trr"

    @property
    def reference_json(self) -> Path:
        return self.reference / "reference.json"

    @property
    def reference_check(self) -> Path:
        return self.reference / "check.json"

    @property
    def native_pdb(self) -> Path:
        """The minimised native structure of a protein reference."""
        return self.reference / "native.pdb"

    @property
    def cg(self) -> Path:
        return self.folder("map")

    @property
    def mapped(self) -> Path:
        """The mapped reference: positions, forces, cells, bead types and masses (``MappedTrajectory``)."""
        return self.cg / "mapped.npz"

    @property
    def cg_topology(self) -> Path:
        return self.cg / "topology.pdb"

    @property
    def dataset(self) -> Path:
        """The mapped reference as schnetpack ASEAtomsData."""
        return self.cg / "dataset.db"

    @property
    def mapping_json(self) -> Path:
        return self.cg / "mapping.json"

    @property
    def model(self) -> Path:
        """The model folder: model.pt (state_dict) + model.json."""
        return self.folder("train")

    @property
    def priors_json(self) -> Path:
        return self.model / "priors.json"

    @property
    def simulation(self) -> Path:
        return self.folder("simulate")

    @property
    def simulation_json(self) -> Path:
        return self.done_file("simulate")

    @property
    def prior_simulation(self) -> Path:
        """The simulation folder of the prior-only control (the model's prior without its network)."""
        return self.simulation / "prior_only"

    @property
    def prior_simulation_json(self) -> Path:
        """The prior-only control's summary, written last (its done file)."""
        return self.prior_simulation / DONE_FILES["simulate"]

    def mutant_simulation(self, spec: str) -> Path:
        """The simulation folder of the mutant ``spec`` (e.g. 'F5A')."""
        return self.simulation / f"mutant_{spec}"

    def mutant_simulation_json(self, spec: str) -> Path:
        """The summary of the mutant ``spec``'s simulation, written last (its done file)."""
        return self.mutant_simulation(spec) / DONE_FILES["simulate"]

    @property
    def analysis(self) -> Path:
        return self.folder("analyse")

    @property
    def structure_npz(self) -> Path:
        """RDF/ADF/q curves of the fluid analysis."""
        return self.analysis / "structure.npz"

    @property
    def protein_npz(self) -> Path:
        """Protein observables, TICA and free-energy surfaces of the protein analysis."""
        return self.analysis / "protein.npz"

    @property
    def lrp(self) -> Path:
        return self.folder("explain")

    @property
    def residue_frames(self) -> Path:
        """Per-frame residue relevance files of a protein and their average (``residue_relevance.npz``)."""
        return self.lrp / "frames"

    @property
    def figures(self) -> Path:
        """The figures folder (created when asked for)."""
        d = self.root / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    # ------------------------------------------------------------ input hashes and reuse
    @staticmethod
    def input_hash(cfg: dict, stage: str) -> str:
        """Hash of the configuration sections ``stage`` depends on, execution keys left out."""
        parts = []
        for s in DEPENDS_ON[stage]:
            if s == "priors" and not cfg.get("priors"):
                continue  # an empty priors section (the fluids) is left out, so older hashes still match
            drop = EXECUTION_KEYS.get(s, ())
            sec = {k: v for k, v in cfg[s].items() if k not in drop}
            # keys added later are left out at their defaults, so hashes of earlier runs still match
            sec = {k: v for k, v in sec.items() if not (k in LATER_KEYS.get(s, {}) and v == LATER_KEYS[s][k])}
            parts.append(sec)
        extra = extra_inputs(cfg, stage)
        if extra:
            parts.append({"extra": extra})
        if (cfg.get("reference") or {}).get("source", "openmm") != "openmm":
            # the user's files are named relative to the system folder: two folders with the same
            # file names are different data (no reuse between them)
            parts.append({"system_dir": str(cfg.get("system_dir", ""))})
        return section_hash(*parts)

    def prepare(self, cfg: dict, stage: str) -> Path:
        """Make ``stage``'s folder ready for ``cfg``: clear it if it holds outputs of other inputs,
        copy a finished one from a sibling run with the same inputs if there is one, and record
        the inputs. Processes of rank > 0 wait for rank 0 to do this. Returns the folder."""

        d = self.folder(stage)
        h = self.input_hash(cfg, stage)
        marker = d / "inputs.json"
        if not is_main_process():
            wait_for(lambda: marker.exists() and read_json(marker).get("hash") == h, f"{marker} (written by rank 0)")
            return d
        self.claim(cfg, stage)
        if d.exists() and marker.exists() and read_json(marker).get("hash") != h:
            shutil.rmtree(d)
        if not d.exists():
            self._copy_from_sibling(stage, h)
        d.mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            write_json(marker, {"hash": h, "sections": {s: cfg[s] for s in DEPENDS_ON[stage]}, "extra": extra_inputs(cfg, stage)})
        return d

    @staticmethod
    def owner(cfg: dict) -> dict:
        """What a run folder records about the system it belongs to (``run.json``)."""
        return {
            "system": cfg.get("name"),
            "system_dir": str(cfg.get("system_dir", "")),
            "source": (cfg.get("reference") or {}).get("source") or "openmm",
            "kind": cfg.get("kind") or "fluid",
        }

    def claim(self, cfg: dict, stage: str) -> None:
        """Check that this folder can be written and belongs to ``cfg``'s system before ``stage``
        uses it: a ``run.json`` of another system folder, source or kind is refused, and so is an
        earlier stage's folder made from other inputs (:meth:`_check_earlier_stages`); then the
        system is recorded in ``run.json`` if it is not yet. Raises :class:`RunFolderError` naming
        the folder and both systems, or a folder that is a file or cannot be written."""
        self.ensure_writable()
        me, path = self.owner(cfg), self.root / OWNER_FILE
        old = read_json(path) if path.exists() else None
        # the bundled systems' OpenMM runs do not depend on where the system folder lies (a moved
        # checkout keeps its runs): their name identifies them; the user's data: their folder
        keys = ("source", "kind", "system" if me["source"] == "openmm" else "system_dir")
        if old is not None and any(old.get(k) != me[k] for k in keys):
            raise RunFolderError(
                f"{self.root}: this run folder belongs to system {old.get('system')!r} ({old.get('system_dir')}, source {old.get('source')}, "
                f"kind {old.get('kind')}), not to {me['system']!r} ({me['system_dir']}, source {me['source']}, kind {me['kind']}): "
                "give another --out"
            )
        self._check_earlier_stages(cfg, stage)
        if old is None:
            write_json(path, me)

    def ensure_writable(self) -> None:
        """Create the run folder if needed. Raises :class:`RunFolderError` when the path is a file
        or the folder cannot be created or written."""
        if self.root.exists() and not self.root.is_dir():
            raise RunFolderError(f"{self.root}: is a file, not a folder; give a run folder (--out) that is a folder or does not exist yet")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise RunFolderError(f"{self.root}: cannot write the run folder ({e.strerror or e}); give a writable --out") from None

    def _check_earlier_stages(self, cfg: dict, stage: str) -> None:
        """Every earlier stage that has a folder here was made from ``cfg``'s inputs; else (another
        system's or changed settings) RunFolderError naming the stage, before this one reads it."""
        for s in STAGES[: STAGES.index(stage)]:
            marker = self.folder(s) / "inputs.json"
            if marker.exists() and read_json(marker).get("hash") != self.input_hash(cfg, s):
                raise RunFolderError(
                    f"{self.root}: its {FOLDERS[s]}/ was made from other inputs than {cfg.get('name')!r} "
                    f"({cfg.get('system_dir')}) has now (another system, or changed settings of stage {s}): "
                    f"run stage {s} again (cgexplain run runs every stage in order) or give another --out"
                )

    def _copy_from_sibling(self, stage: str, h: str) -> bool:
        root = self.root.resolve()
        if stage not in _SHAREABLE or not root.parent.exists():
            return False
        for other_root in sorted(root.parent.iterdir()):
            if other_root == root or not other_root.is_dir():
                continue
            other = RunFolder(other_root)
            src = other.folder(stage)
            if not other.is_done(stage) or not (src / "inputs.json").exists():
                continue
            if read_json(src / "inputs.json").get("hash") == h:
                tmp = root / f".{FOLDERS[stage]}.copying"
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(src, tmp)
                tmp.rename(self.folder(stage))
                print(f"cgexplain: {FOLDERS[stage]}/ reused from {other_root} (same inputs)")
                return True
        return False

    # ------------------------------------------------------------ CG trajectories
    def cg_trajectories(self, sim_dir: Path | None = None) -> list[Path]:
        """The DCD files of the simulation stage (or of ``sim_dir``, e.g. a mutant's), one per replica."""

        d = self.simulation if sim_dir is None else Path(sim_dir)
        return trajectory_paths(d, int(read_json(d / DONE_FILES["simulate"]).get("n_replicas", 1)))

    def cg_source(self, sim_dir: Path | None = None) -> TrajectoryFrames:
        """The CG frames of the simulation stage (or of ``sim_dir``), all replicas in order, as a
        streaming :class:`~cgexplain.lrp.sources.TrajectoryFrames` (bead types of the mapped
        reference). Raises FileNotFoundError if the simulation has not finished."""
        d = self.simulation if sim_dir is None else Path(sim_dir)
        if not (d / DONE_FILES["simulate"]).exists():
            raise FileNotFoundError(f"{d / DONE_FILES['simulate']}: the simulate stage has not finished")
        with np.load(self.mapped) as z:
            types = z["bead_types"]
        return TrajectoryFrames(self.cg_topology, self.cg_trajectories(d), types)

    def cg_frames(self, sim_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """CG frames of the simulation stage (or of ``sim_dir``), all replicas concatenated, in memory
        (:meth:`cg_source` streams them).

        Returns positions (F, n, 3) Å, cells (F, 3, 3) Å (zeros: no box, not periodic) and the
        number of frames of each replica. Raises FileNotFoundError if the simulation has not run.
        """
        src = self.cg_source(sim_dir)
        pos, cells = src.read_all()
        return pos, cells, src.lengths
