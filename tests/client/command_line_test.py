#!/usr/bin/env python3
"""The command-line rules shared by spinnet-server, spinnet and spinnet-train,
and the shell completion of `spinnet` (no server), then `spinnet models
export` and `spinnet models import` against a real server on a temporary
data dir.

usage: command_line_test.py BUILD_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "server"))
import testlib  # noqa: E402

BUILD = None


def programs():
    return {
        "spinnet-server": os.path.join(BUILD, "server", "spinnet-server"),
        "spinnet": os.path.join(BUILD, "client", "spinnet"),
        "spinnet-train": os.path.join(BUILD, "core", "spinnet-train"),
    }


def run(program, *args):
    return subprocess.run([programs()[program], *args], capture_output=True,
                          text=True, timeout=60)


def project_version():
    with open(os.path.join(os.path.dirname(__file__), "..", "..",
                           "CMakeLists.txt")) as f:
        return re.search(r"project\(spinnet VERSION ([0-9.]+)", f.read()).group(1)


class RulesTest(unittest.TestCase):
    def assert_usage_error(self, program, args, message):
        r = run(program, *args)
        self.assertEqual(r.returncode, 2, (program, args, r.stderr))
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(program + ": "), lines[0])
        self.assertIn(message, lines[0])

    def test_version_on_all_three(self):
        for program in programs():
            r = run(program, "--version")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), "spinnet " + project_version())

    def test_unknown_flags_and_missing_values(self):
        for program in programs():
            self.assert_usage_error(program, ["--bogus"], "unknown flag --bogus")
            self.assert_usage_error(program, ["--bogus=1"], "unknown flag --bogus")
        self.assert_usage_error("spinnet-server", ["--listen"], "needs a value")
        self.assert_usage_error("spinnet-train", ["--epochs"], "needs a value")
        self.assert_usage_error("spinnet", ["jobs", "--state"], "needs a value")
        self.assert_usage_error("spinnet", ["jobs", "--bogus"], "unknown flag")
        self.assert_usage_error("spinnet", ["nosuchcommand"], "unexpected argument")
        self.assert_usage_error("spinnet", ["job"], "usage: spinnet job ID")
        self.assert_usage_error("spinnet", ["train", "--dataset", "d"],
                                "needs --model")

    def test_equals_and_space_forms_are_the_same(self):
        # The same bad value, given both ways, is the same error.
        cases = [
            ("spinnet-server", "lease-ttl", "-1", "bad value '-1'"),
            ("spinnet-train", "lr", "abc", "'abc' is not a number"),
            ("spinnet", "timeout", "0", "not a positive number of seconds"),
        ]
        for program, flag, value, message in cases:
            prefix = ["jobs"] if program == "spinnet" else []
            self.assert_usage_error(program, prefix + [f"--{flag}={value}"], message)
            self.assert_usage_error(program, prefix + [f"--{flag}", value], message)
        # Training flags read the same in `spinnet train` and spinnet-train.
        for form in (["--dt-in=abc"], ["--dt-in", "abc"]):
            self.assert_usage_error("spinnet-train", form, "not a number")
        r = run("spinnet", "--server=127.0.0.1:1", "--timeout", "0.5", "train",
                "--dataset=digits", "--model", "m", "--dt-in=abc")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("dt-in", r.stderr)

    def test_switches_take_no_value_and_flags_once(self):
        self.assert_usage_error("spinnet-server", ["--reflection=1"], "takes no value")
        self.assert_usage_error("spinnet", ["jobs", "--json=1"], "takes no value")
        self.assert_usage_error("spinnet-train", ["--epochs", "1", "--epochs=2"],
                                "given twice")

    def test_help_lists_every_flag_with_units_and_defaults(self):
        r = run("spinnet-server", "--help")
        self.assertEqual(r.returncode, 0)
        for flag in ["--listen", "--metrics-listen", "--store", "--data-dir",
                     "--training-workers", "--lease-ttl", "--shutdown-grace",
                     "--max-connection-age-grace", "--reflection"]:
            self.assertIn(flag, r.stdout)
        self.assertIn("(default 127.0.0.1:50051)", r.stdout)
        self.assertIn("[s] (default 15)", r.stdout)
        train = run("spinnet-train", "--help").stdout
        client_train = run("spinnet", "train", "--help").stdout
        client_sweep = run("spinnet", "sweep", "submit", "--help").stdout
        # Every training flag reads the same in all three.
        section = train.split("Training settings:")[1]
        training = [l.strip() for l in section.splitlines()
                    if l.strip().startswith("--")]
        self.assertGreater(len(training), 25)
        for line in training:
            self.assertIn(line, client_train)
            self.assertIn(line, client_sweep)
        self.assertIn("[ns] (default 1; ctrnn 10)", client_train)
        top = run("spinnet", "--help")
        self.assertEqual(top.returncode, 0)
        for command in ["train", "jobs", "sweep", "datasets", "models",
                        "classify", "stream", "trace", "metrics", "health",
                        "completion"]:
            self.assertIn(command, top.stdout)
        for command in [["datasets", "upload"], ["stream"], ["classify"],
                        ["models", "delete"], ["models", "export"],
                        ["models", "import"], ["watch"], ["sweep", "submit"],
                        ["sweep", "watch"], ["trace"]]:
            r = run("spinnet", *command, "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("usage: spinnet " + " ".join(command), r.stdout)
            self.assertIn("--server", r.stdout)


class CompletionTest(unittest.TestCase):
    def complete(self, *words):
        """COMPREPLY of the generated script in a real bash for `words`, the
        last one being completed."""
        script = run("spinnet", "completion", "bash")
        self.assertEqual(script.returncode, 0, script.stderr)
        quoted = " ".join("'%s'" % w for w in ["spinnet", *words])
        program = (
            'eval "$(cat)"\n'
            'complete -p spinnet >/dev/null || exit 3\n'
            'func=$(complete -p spinnet | sed -E "s/.*-F ([^ ]+).*/\\1/")\n'
            f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}\n"
            'COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}\n'
            '"$func" spinnet "${COMP_WORDS[COMP_CWORD]}" '
            '"${COMP_WORDS[COMP_CWORD-1]}"\n'
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c", program],
                           input=script.stdout, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.split()

    def test_completes_commands(self):
        self.assertEqual(self.complete("da"), ["datasets"])
        self.assertIn("stream", self.complete("st"))
        self.assertEqual(self.complete("datasets", "up"), ["upload"])
        self.assertEqual(self.complete("--json", "models", "d"), ["delete"])
        self.assertEqual(self.complete("models", "i"), ["import"])
        self.assertEqual(self.complete("models", "export", "--o"), ["--out"])
        self.assertEqual(self.complete("completion", "z"), ["zsh"])

    def test_completes_flags_of_the_command(self):
        self.assertEqual(self.complete("train", "--dt"), ["--dt-in"])
        self.assertIn("--sequences", self.complete("stream", "--s"))
        self.assertNotIn("--sequences", self.complete("classify", "--s"))
        self.assertIn("--server", self.complete("--s"))
        self.assertEqual(self.complete("datasets", "upload", "--input"),
                         ["--input-dim"])

    def test_zsh_script_is_generated_too(self):
        r = run("spinnet", "completion", "zsh")
        self.assertEqual(r.returncode, 0)
        self.assertIn("bashcompinit", r.stdout)
        self.assertIn("datasets", r.stdout)


class ModelTransferTest(unittest.TestCase):
    """`spinnet models export/import` on a server, with a file that
    spinnet-train wrote."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="spinnet_cli_models.")
        cls.dir = cls.tmp.name
        cls.csv = os.path.join(cls.dir, "few.csv")
        with open(cls.csv, "w") as f:
            f.write("\n".join(testlib.digit_rows(60)) + "\n")
        # A tiny network, one epoch on 60 digits: a second or so.
        cls.offline = os.path.join(cls.dir, "offline.spnm")
        r = run("spinnet-train", "--dataset", cls.csv, "--epochs", "1",
                "--neurons", "8", "--layers", "1", "--out", cls.offline)
        if r.returncode != 0:
            raise AssertionError("spinnet-train failed: " + r.stderr)
        cls.server = testlib.Server(BUILD, "--data-dir",
                                    os.path.join(cls.dir, "data"))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def write(self, name, data):
        with open(self.path(name), "wb") as f:
            f.write(data)
        return self.path(name)

    def versions(self):
        return [(m["name"], m["version"])
                for r in self.server.json("models") for m in r.get("models", [])]

    def assert_fails(self, args, code, message, exit_status=1):
        r = self.server.cli(*args, check=False)
        self.assertEqual(r.returncode, exit_status, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("spinnet: " + code), lines[0])
        self.assertIn(message, lines[0])

    def test_import_serve_export_round_trip(self):
        r = self.server.cli("models", "import", "trained", self.offline)
        self.assertEqual(r.stdout.strip(),
                         f"imported {self.offline} as model trained version 1")
        [model] = self.server.json("models", "import", "trained", self.offline)
        self.assertEqual(model["version"], 2)
        self.assertEqual(testlib.field(model, "source_job_id") or "", "")
        self.assertEqual(testlib.field(model, "class_labels"),
                         [str(d) for d in range(10)])

        out = self.path("exported.spnm")
        r = self.server.cli("models", "export", "trained", "--version", "1",
                            "--out", out)
        self.assertIn("exported model trained version 1 to " + out, r.stdout)
        self.assertEqual(self.read(out), self.read(self.offline))
        [latest] = self.server.json("models", "export", "trained", "--out",
                                    self.path("latest.spnm"))
        self.assertEqual(latest["version"], 2)
        self.assertEqual(self.read(self.path("latest.spnm")),
                         self.read(self.offline))

        # The exported file, imported again, classifies exactly the same.
        self.server.cli("models", "import", "again", out)
        answers = {}
        for name in ("trained", "again"):
            rows = self.server.json("classify", "--model", name, self.csv)
            answers[name] = [[testlib.field(c, "class_index"),
                              c["label"], c["probabilities"]]
                             for r in rows for c in r["results"]]
        self.assertEqual(len(answers["trained"]), 60)
        self.assertEqual(answers["trained"], answers["again"])
        # A command's --version V is the model's, not the program's.
        self.assert_fails(["classify", "--model", "trained", "--version", "7",
                           self.csv], "NOT_FOUND", "version 7")

    def test_bad_files_and_names_change_nothing(self):
        before = self.versions()
        good = self.read(self.offline)
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x01
        cases = [
            (self.write("flipped.spnm", bytes(flipped)), "DATA_LOSS",
             "checksum mismatch"),
            (self.write("short.spnm", good[:-7]), "DATA_LOSS",
             "checksum mismatch"),
            (self.write("empty.spnm", b""), "INVALID_ARGUMENT", "empty"),
            (self.csv, "INVALID_ARGUMENT", "not a spinnet model file"),
        ]
        for path, code, message in cases:
            with self.subTest(path=path):
                self.assert_fails(["models", "import", "bad", path], code,
                                  message)
        self.assert_fails(["models", "import", "bad", self.path("missing")],
                          "NOT_FOUND", "missing")
        self.assert_fails(["models", "import", "a/b", self.offline],
                          "INVALID_ARGUMENT", "name")
        self.assertEqual(self.versions(), before)

        out = self.path("never.spnm")
        self.assert_fails(["models", "export", "nosuch", "--out", out],
                          "NOT_FOUND", "nosuch")
        self.assert_fails(["models", "export", "..", "--out", out],
                          "INVALID_ARGUMENT", "name")
        self.assertFalse(os.path.exists(out))
        r = self.server.cli("models", "export", "trained", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--out", r.stderr)
        r = self.server.cli("models", "export", "trained", "--version", "-1",
                            "--out", out, check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
