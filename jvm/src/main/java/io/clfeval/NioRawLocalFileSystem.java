package io.clfeval;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system with the two calls of a write that start a process done in the JVM.
 *
 * <p>Without Hadoop's native library (pyspark from PyPI has none), {@link RawLocalFileSystem}
 * sets a permission by running {@code chmod} and reads a link by running {@code readlink}: every
 * Parquet file, checksum file, directory and Delta commit written to a {@code file:} path starts
 * one or two processes (~170 a run, ~3 ms each, measured). Here:
 *
 * <ul>
 *   <li>{@link #setPermission}: the nine permission bits through {@link
 *       Files#setPosixFilePermissions}, which is the {@code chmod(2)} call {@code chmod 0644}
 *       makes. Where that would differ from the command, Hadoop's own code runs: a mode with
 *       sticky, setuid or setgid bits, a path that has any of them (GNU {@code chmod} keeps a
 *       directory's setgid bit), a symbolic link, a file system without POSIX attributes.
 *   <li>{@link #getFileLinkStatus}: a path that is not a symbolic link gets {@link
 *       #getFileStatus}, which is what Hadoop's code returns after {@code readlink} printed
 *       nothing; a symbolic link goes to Hadoop's code.
 * </ul>
 *
 * <p>Other calls stay Hadoop's, and some of them still start a process ({@code ls} for the owner
 * and permission of a file's status, {@code chown}): a run makes none of them (a Java Flight
 * Recorder recording of three warm runs saw no process started).
 */
public class NioRawLocalFileSystem extends RawLocalFileSystem {
  /** PosixFilePermission for mode bit b (0 = others execute ... 8 = owner read). */
  private static final PosixFilePermission[] BIT = {
    PosixFilePermission.OTHERS_EXECUTE,
    PosixFilePermission.OTHERS_WRITE,
    PosixFilePermission.OTHERS_READ,
    PosixFilePermission.GROUP_EXECUTE,
    PosixFilePermission.GROUP_WRITE,
    PosixFilePermission.GROUP_READ,
    PosixFilePermission.OWNER_EXECUTE,
    PosixFilePermission.OWNER_WRITE,
    PosixFilePermission.OWNER_READ,
  };

  private static final int SPECIAL_BITS = 07000; // setuid, setgid, sticky

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    java.nio.file.Path file = pathToFile(p).toPath();
    int mode = permission.toShort();
    int current;
    try {
      current = (Integer) Files.getAttribute(file, "unix:mode", LinkOption.NOFOLLOW_LINKS);
    } catch (UnsupportedOperationException | IllegalArgumentException e) {
      super.setPermission(p, permission);
      return;
    }
    if ((mode & SPECIAL_BITS) != 0 || (current & SPECIAL_BITS) != 0 || Files.isSymbolicLink(file)) {
      super.setPermission(p, permission);
      return;
    }
    Set<PosixFilePermission> bits = EnumSet.noneOf(PosixFilePermission.class);
    for (int b = 0; b < BIT.length; b++) {
      if ((mode & (1 << b)) != 0) {
        bits.add(BIT[b]);
      }
    }
    Files.setPosixFilePermissions(file, bits);
  }

  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    if (Files.isSymbolicLink(pathToFile(f).toPath())) {
      return super.getFileLinkStatus(f);
    }
    return getFileStatus(f);
  }
}
