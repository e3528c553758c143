#!/usr/bin/env python3
"""Copies protoc's Python output for spinnet/v1 (SRC) into the package
directory DEST (spinnet/_proto), rewriting `from spinnet.v1 import x_pb2`
as `from . import x_pb2`: the generated modules then import as a
subpackage of spinnet and cannot clash with the top-level `spinnet`
package that holds them.

usage: fix_imports.py SRC DEST
"""
import os
import re
import sys


def main(src: str, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    names = sorted(n for n in os.listdir(src) if n.endswith(".py"))
    if not names:
        sys.exit(f"fix_imports.py: no generated modules in {src}")
    for name in names:
        with open(os.path.join(src, name)) as f:
            text = f.read()
        text = re.sub(r"^from spinnet\.v1 import ", "from . import ", text,
                      flags=re.MULTILINE)
        if re.search(r"^(from|import) spinnet\b", text, flags=re.MULTILINE):
            sys.exit(f"fix_imports.py: {name}: an import of spinnet left")
        with open(os.path.join(dest, name), "w") as f:
            f.write(text)
    with open(os.path.join(dest, "__init__.py"), "w") as f:
        f.write('"""spinnet.v1 messages and gRPC stubs, generated from '
                'proto/spinnet/v1 at build time."""\n')


if __name__ == "__main__":
    main(*sys.argv[1:])
