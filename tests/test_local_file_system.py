"""clfeval's local file system (jvm/.../NioRawLocalFileSystem.java) against
Hadoop's own: the same permissions and link statuses, without starting a process.
Only the opt-in ``fast-local`` profile names it; a default session keeps
Hadoop's own (test_run_mechanics.py)."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import pytest
from py4j.protocol import Py4JJavaError

from clfeval.io import session
from clfeval.io.session import (
    AGGREGATORS_JAR,
    FAST_LOCAL,
    LOCAL_FILE_SYSTEM_CONF,
    local_small_conf,
    session_conf,
)

needs_jar = pytest.mark.skipif(not AGGREGATORS_JAR.is_file(), reason="`make jar` not run")


def _file_systems(spark):
    """(clfeval's, Hadoop's) raw local file systems, both initialized like Spark's."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    uri = jvm.java.net.URI("file:///")
    ours = jvm.io.clfeval.NioRawLocalFileSystem()
    hadoops = jvm.org.apache.hadoop.fs.RawLocalFileSystem()
    ours.initialize(uri, conf)
    hadoops.initialize(uri, conf)
    return ours, hadoops


def _path(spark, path: Path, qualified: bool = True):
    return spark._jvm.org.apache.hadoop.fs.Path(f"file:{path}" if qualified else str(path))


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@needs_jar
def test_the_fast_local_profile_opens_file_paths_with_clfevals_file_system(spark) -> None:
    """Both of Hadoop's entry points (FileSystem: Spark's readers and writers;
    FileContext: Delta's commits) resolve file: to clfeval's classes under the
    profile's settings (new instances: Hadoop's cache of the suite's default
    file system is left alone)."""
    jvm = spark._jvm
    conf = jvm.org.apache.hadoop.conf.Configuration(spark._jsc.hadoopConfiguration())
    for key, value in LOCAL_FILE_SYSTEM_CONF.items():
        if key.startswith("spark.hadoop."):
            conf.set(key.removeprefix("spark.hadoop."), value)
    uri = jvm.java.net.URI("file:///")
    local = jvm.org.apache.hadoop.fs.FileSystem.newInstance(uri, conf)
    assert local.getClass().getName() == LOCAL_FILE_SYSTEM_CONF["spark.hadoop.fs.file.impl"]
    assert local.getRaw().getClass().getName() == "io.clfeval.NioRawLocalFileSystem"
    context = jvm.org.apache.hadoop.fs.FileContext.getFileContext(uri, conf)
    assert (
        context.getDefaultFileSystem().getClass().getName()
        == LOCAL_FILE_SYSTEM_CONF["spark.hadoop.fs.AbstractFileSystem.file.impl"]
    )


@needs_jar
@pytest.mark.parametrize(
    "mode",
    [0o644, 0o600, 0o755, 0o700, 0o777, 0o000, 0o421, 0o1777, 0o2755],
)
@pytest.mark.parametrize("kind", ["file", "directory"])
def test_set_permission_gives_the_mode_hadoop_gives(spark, tmp_path, mode, kind) -> None:
    """Every permission bit lands where Hadoop's `chmod` puts it, on files and
    directories; modes with sticky/setgid bits (Hadoop's code) too."""
    ours, hadoops = _file_systems(spark)
    perm = spark._jvm.org.apache.hadoop.fs.permission.FsPermission.createImmutable(mode)
    modes = []
    for name, fs in (("ours", ours), ("hadoops", hadoops)):
        target = tmp_path / name
        target.mkdir() if kind == "directory" else target.write_text("x")
        target.chmod(0o640)
        fs.setPermission(_path(spark, target), perm)
        modes.append(_mode(target))
        target.chmod(0o700)  # let tmp_path be removed whatever the mode
    assert modes[0] == modes[1], [oct(m) for m in modes]
    assert modes[0] & 0o777 == mode & 0o777


@needs_jar
def test_set_permission_keeps_a_directorys_setgid_bit_as_chmod_does(spark, tmp_path) -> None:
    ours, hadoops = _file_systems(spark)
    perm = spark._jvm.org.apache.hadoop.fs.permission.FsPermission.createImmutable(0o755)
    modes = []
    for name, fs in (("ours", ours), ("hadoops", hadoops)):
        target = tmp_path / name
        target.mkdir()
        target.chmod(0o2770)
        fs.setPermission(_path(spark, target), perm)
        modes.append(_mode(target))
    assert modes[0] == modes[1], [oct(m) for m in modes]


@needs_jar
def test_created_files_and_directories_get_hadoops_modes(spark, tmp_path) -> None:
    """create and mkdirs (what a Parquet write and a Delta commit call) set the
    default permissions under the umask, as Hadoop's code does."""
    ours, hadoops = _file_systems(spark)
    modes = {}
    for name, fs in (("ours", ours), ("hadoops", hadoops)):
        folder = tmp_path / name / "a" / "b"
        assert fs.mkdirs(_path(spark, folder))
        out = fs.create(_path(spark, folder / "part.parquet"))
        out.write(7)
        out.close()
        modes[name] = [_mode(p) for p in (tmp_path / name / "a", folder, folder / "part.parquet")]
        assert (folder / "part.parquet").read_bytes() == b"\x07"
    assert modes["ours"] == modes["hadoops"], modes


def _link_status(fs, path):
    try:
        status = fs.getFileLinkStatus(path)
    except Py4JJavaError as error:
        return error.java_exception.getClass().getName()
    target = str(status.getSymlink().toUri().getPath()) if status.isSymlink() else None
    return (status.isSymlink(), status.isDirectory(), status.getLen(), target)


@needs_jar
def test_link_status_equals_hadoops(spark, tmp_path) -> None:
    """Regular files, directories, symbolic links (given with and without the
    scheme: Hadoop reads the link only without it) and missing paths."""
    ours, hadoops = _file_systems(spark)
    (tmp_path / "data.txt").write_text("twelve bytes")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data.txt")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    names = ["data.txt", "folder", "link", "dangling", "missing"]
    for qualified in (True, False):
        for name in names:
            path = _path(spark, tmp_path / name, qualified)
            assert _link_status(ours, path) == _link_status(hadoops, path), (name, qualified)
    # Guards against comparing two things that cannot differ: Hadoop sees the link.
    link = _link_status(hadoops, _path(spark, tmp_path / "link", qualified=False))
    assert link[0] is True and link[3] == str(tmp_path / "data.txt")


def test_local_sessions_name_the_file_system_only_when_the_jar_has_it(
    monkeypatch, tmp_path
) -> None:
    """The classes live in the optional jar: a session without it, or with a jar
    built before they existed, must not name them (Hadoop would then fail to
    start the JVM)."""
    jar = tmp_path / "clfeval-aggregators.jar"
    monkeypatch.setattr(session, "AGGREGATORS_JAR", jar)
    assert not set(LOCAL_FILE_SYSTEM_CONF) & set(local_small_conf("local[2]", FAST_LOCAL))
    with zipfile.ZipFile(jar, "w") as old:
        old.writestr("io/clfeval/PartitionStates.class", b"")
    assert not set(LOCAL_FILE_SYSTEM_CONF) & set(local_small_conf("local[2]", FAST_LOCAL))
    with zipfile.ZipFile(jar, "w") as built:
        for name in ("NioLocalFileSystem", "NioLocalFs", "NioRawLocalFileSystem"):
            built.writestr(f"io/clfeval/{name}.class", b"")
    assert set(LOCAL_FILE_SYSTEM_CONF) <= set(local_small_conf("local[2]", FAST_LOCAL))
    assert not set(LOCAL_FILE_SYSTEM_CONF) & set(local_small_conf("local[2]"))


@needs_jar
def test_a_callers_own_driver_class_path_keeps_the_jar() -> None:
    """extra_conf wins over clfeval's settings, but a driver class path of the
    caller's own must not drop the jar the file system lives in (the JVM would not
    start); a cluster session is given neither."""
    key = "spark.driver.extraClassPath"
    conf = session_conf("local[2]", True, "UTC", {key: "/opt/jdbc/driver.jar"}, FAST_LOCAL)
    assert conf[key].split(os.pathsep) == ["/opt/jdbc/driver.jar", str(AGGREGATORS_JAR)]
    assert conf["spark.hadoop.fs.file.impl"] == LOCAL_FILE_SYSTEM_CONF["spark.hadoop.fs.file.impl"]
    # A caller that passes local_small_conf itself (the suite's session did) gets
    # the jar once.
    passed_again = session_conf(
        "local[2]", True, "UTC", local_small_conf("local[2]", FAST_LOCAL), FAST_LOCAL
    )
    assert passed_again[key] == str(AGGREGATORS_JAR)
    cluster = session_conf("spark://127.0.0.1:7077", False, "UTC", None)
    assert not set(LOCAL_FILE_SYSTEM_CONF) & set(cluster), cluster
