#!/usr/bin/env python3
"""META.json against the PGXN meta spec 1.0.0 (https://pgxn.org/meta/spec.txt): its required
keys and their forms, and agreement with the control file and debian/changelog; then the
archive `make dist` made: everything under pg_connguard-VERSION/, META.json and the control
file in it, and the files of the commit (HEAD). Usage: pgxn_check.py SOURCE_DIR ARCHIVE.zip"""
import json
import re
import subprocess
import sys
import zipfile

SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z-]+)?$")
# The spec's license strings (section "license").
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd", "gfdl_1_2",
            "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
            "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source", "restricted",
            "unrestricted", "unknown"}
problems = []


def need(condition, what):
    if not condition:
        problems.append(what)


source, archive = sys.argv[1], sys.argv[2]
meta = json.load(open(f"{source}/META.json"))
for key in ("name", "abstract", "maintainer", "license", "provides", "version", "meta-spec"):
    need(key in meta, f"required key {key!r} missing")
need(isinstance(meta.get("name"), str) and re.match(r"^[^\s/\\]{2,}$", meta.get("name", "")), "name: 2+ characters, no space or slash")
need(isinstance(meta.get("abstract"), str) and meta.get("abstract"), "abstract: a non-empty string")
need(isinstance(meta.get("maintainer"), (str, list)) and meta.get("maintainer"), "maintainer: a string or a list")
license_value = meta.get("license")
need(license_value in LICENSES or isinstance(license_value, dict), f"license: {license_value!r} is not a spec license")
need(SEMVER.match(str(meta.get("version", ""))), "version: a semantic version")
need(meta.get("meta-spec", {}).get("version") == "1.0.0", "meta-spec.version: 1.0.0")
for name, entry in meta.get("provides", {}).items():
    need("file" in entry and "version" in entry, f"provides.{name}: file and version are required")
    need(SEMVER.match(str(entry.get("version", ""))), f"provides.{name}.version: a semantic version")
    need(subprocess.run(["test", "-f", f"{source}/{entry.get('file', '')}"]).returncode == 0,
         f"provides.{name}.file: {entry.get('file')} does not exist")
for phase in meta.get("prereqs", {}).values():
    for relation in phase.values():
        need(all(SEMVER.match(v) for v in relation.values()), "prereqs: versions are semantic versions")

control = open(f"{source}/pg_connguard.control").read()
default_version = re.search(r"default_version = '([^']+)'", control).group(1)
need(meta.get("version", "").startswith(default_version + "."), f"version {meta.get('version')} is not of default_version {default_version}")
changelog_version = re.match(r"\S+ \(([^)-]+)", open(f"{source}/debian/changelog").readline()).group(1)
need(changelog_version == meta.get("version"), f"debian/changelog says {changelog_version}, META.json {meta.get('version')}")

prefix = f"{meta['name']}-{meta['version']}/"
names = zipfile.ZipFile(archive).namelist()
need(all(n.startswith(prefix) for n in names), f"every file of the archive is under {prefix}")
need(prefix + "META.json" in names and prefix + "pg_connguard.control" in names, "META.json and the control file are in the archive")
tracked = subprocess.run(["git", "-C", source, "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.split()
files = {n[len(prefix):] for n in names if not n.endswith("/")}
need(files == set(tracked), f"the archive holds the files of HEAD (differs by {sorted(set(tracked) ^ files)[:5]})")

for problem in problems:
    print("META/dist:", problem)
print(f"pgxn: META.json and {archive.split('/')[-1]} ({len(files)} files): {'PASS' if not problems else 'FAIL'}")
sys.exit(1 if problems else 0)
