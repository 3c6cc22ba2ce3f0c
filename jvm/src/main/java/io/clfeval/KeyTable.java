package io.clfeval;

import java.nio.ByteOrder;
import java.util.Arrays;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StringType;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.Platform;

/**
 * The group keys one task has seen: a hash table from a row's first {@code keyTypes.length}
 * columns (strings, dates or integers) to a dense group index 0, 1, 2, ... in order of first
 * appearance. Not thread-safe: one per task.
 *
 * <p>Three ways to a key, fastest first. (1) Whole-row words: for rows of Spark's UnsafeRow
 * format (what whole-stage code produces) whose fields after the keys are all fixed-width
 * ({@code wholeRowFields}, see {@link #wholeRowFields}), every variable-length byte of the row
 * belongs to a key string, so a key is the key fields' null bits, their 8-byte slots (a string's
 * slot is its offset and size) and the row's variable-length region: hashed and compared as one
 * run of words, the stored key being a copy of the first row of its group. Equal words imply
 * equal keys (same offsets and sizes, same bytes); two rows of one key laid out differently
 * would only make two groups, whose partial sums the step after the scan adds up. (2) Other
 * UnsafeRows: key strings hashed and compared field by field by 8-byte words, in place. (3) Other
 * rows: through UTF8String. (A group added through one way and looked up through another would
 * likewise be held twice.)
 *
 * <p>Each group's key values are decoded once, when the group is added, for {@link #keyValues}
 * (decoding through {@code UnsafeRow.get} per output row took 8% of a scan's time).
 */
final class KeyTable {
  private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

  private final DataType[] keyTypes;
  private final boolean[] isString;
  private final UnsafeProjection keyOf;
  private final int wholeRowFields; // the rows' field count for way (1), or -1
  private final long keyNullMask; // the key fields' bits in an UnsafeRow's first null word
  private final int fixedBytes; // null bits and slots of a row of wholeRowFields fields
  private final int[] slots; // group index + 1 per hash slot, 0 = empty
  private final UnsafeRow[] keys;
  private final Object[][] values;
  private final int[] hashes;
  private int size;

  /** The types of {@code schema}'s first {@code keyCount} fields, checked to be key types. */
  static DataType[] keyTypesOf(StructType schema, int keyCount) {
    DataType[] keyTypes = new DataType[keyCount];
    for (int k = 0; k < keyCount; k++) {
      keyTypes[k] = schema.fields()[k].dataType();
      if (!(keyTypes[k] instanceof StringType
          || keyTypes[k] == DataTypes.DateType
          || keyTypes[k] == DataTypes.IntegerType)) {
        throw new IllegalArgumentException("unsupported key type " + keyTypes[k]);
      }
    }
    return keyTypes;
  }

  /**
   * {@code schema}'s field count when its rows can be keyed by whole-row words (every field
   * after the first {@code keyCount} fixed-width, at most 64 fields), else -1.
   */
  static int wholeRowFields(StructType schema, int keyCount) {
    int fields = schema.fields().length;
    for (int k = keyCount; k < fields; k++) {
      if (!UnsafeRow.isFixedLength(schema.fields()[k].dataType())) {
        return -1;
      }
    }
    return fields <= 64 ? fields : -1;
  }

  /**
   * A table for up to {@code maxGroups} groups (the caller empties it before more); {@code
   * wholeRowFields} from {@link #wholeRowFields}, or -1.
   */
  KeyTable(DataType[] keyTypes, int maxGroups, int wholeRowFields) {
    this.keyTypes = keyTypes;
    this.isString = new boolean[keyTypes.length];
    for (int k = 0; k < keyTypes.length; k++) {
      isString[k] = keyTypes[k] instanceof StringType;
    }
    this.keyOf = UnsafeProjection.create(keyTypes);
    this.wholeRowFields = wholeRowFields;
    this.keyNullMask = keyTypes.length >= 64 ? -1L : (1L << keyTypes.length) - 1;
    this.fixedBytes =
        wholeRowFields < 0
            ? 0
            : UnsafeRow.calculateBitSetWidthInBytes(wholeRowFields) + 8 * wholeRowFields;
    this.slots = new int[Integer.highestOneBit(Math.max(2, maxGroups) * 4)];
    this.keys = new UnsafeRow[maxGroups];
    this.values = new Object[maxGroups][];
    this.hashes = new int[maxGroups];
  }

  int size() {
    return size;
  }

  void clear() {
    Arrays.fill(keys, 0, size, null);
    Arrays.fill(values, 0, size, null);
    Arrays.fill(slots, 0);
    size = 0;
  }

  /** The values of group {@code index}'s key, in a new array with {@code extra} more slots. */
  Object[] keyValues(int index, int extra) {
    return Arrays.copyOf(values[index], keyTypes.length + extra);
  }

  /** The row's group index: found by hash and key equality, else added. */
  int indexOf(InternalRow row) {
    if (row instanceof UnsafeRow unsafe && unsafe.numFields() == wholeRowFields) {
      return indexOfWholeRow(unsafe);
    }
    boolean words = row instanceof UnsafeRow;
    int hash = 17;
    for (int k = 0; k < keyTypes.length; k++) {
      int field = 0;
      if (!row.isNullAt(k)) {
        if (!isString[k]) {
          field = row.getInt(k);
        } else {
          field = words ? wordHash((UnsafeRow) row, k) : row.getUTF8String(k).hashCode();
        }
      }
      hash = hash * 31 + field;
    }
    int mask = slots.length - 1;
    int slot = (hash ^ (hash >>> 16)) & mask;
    while (slots[slot] != 0) {
      int index = slots[slot] - 1;
      if (hashes[index] == hash && sameKey(row, keys[index], words)) {
        return index;
      }
      slot = (slot + 1) & mask;
    }
    return add(slot, hash, keyOf.apply(row).copy());
  }

  /** Way (1): {@code row} has wholeRowFields fields. */
  private int indexOfWholeRow(UnsafeRow row) {
    Object base = row.getBaseObject();
    long address = row.getBaseOffset();
    long nulls = Platform.getLong(base, address) & keyNullMask;
    int end = row.getSizeInBytes();
    long h = nulls * 0x9E3779B97F4A7C15L + end;
    for (int k = 0; k < keyTypes.length; k++) {
      h = (h ^ row.getLong(k)) * 0x9E3779B97F4A7C15L;
    }
    for (int i = fixedBytes; i < end; i += 8) {
      h = (h ^ Platform.getLong(base, address + i)) * 0x9E3779B97F4A7C15L;
    }
    int hash = (int) (h ^ (h >>> 32));
    int mask = slots.length - 1;
    int slot = (hash ^ (hash >>> 16)) & mask;
    while (slots[slot] != 0) {
      int index = slots[slot] - 1;
      if (hashes[index] == hash && sameWholeRow(row, nulls, keys[index])) {
        return index;
      }
      slot = (slot + 1) & mask;
    }
    return add(slot, hash, row.copy());
  }

  /** Whether {@code key} (a row stored by way (1)) has the same key words as {@code row}. */
  private boolean sameWholeRow(UnsafeRow row, long nulls, UnsafeRow key) {
    int end = row.getSizeInBytes();
    if (key.numFields() != wholeRowFields || key.getSizeInBytes() != end) {
      return false;
    }
    Object baseA = row.getBaseObject();
    Object baseB = key.getBaseObject();
    long addressA = row.getBaseOffset();
    long addressB = key.getBaseOffset();
    if (nulls != (Platform.getLong(baseB, addressB) & keyNullMask)) {
      return false;
    }
    for (int k = 0; k < keyTypes.length; k++) {
      if (row.getLong(k) != key.getLong(k)) {
        return false;
      }
    }
    for (int i = fixedBytes; i < end; i += 8) {
      if (Platform.getLong(baseA, addressA + i) != Platform.getLong(baseB, addressB + i)) {
        return false;
      }
    }
    return true;
  }

  private int add(int slot, int hash, UnsafeRow key) {
    if (size == keys.length) {
      throw new IllegalStateException("more than " + keys.length + " groups: empty the table first");
    }
    keys[size] = key;
    values[size] = decode(key, keyTypes);
    hashes[size] = hash;
    slots[slot] = ++size;
    return size - 1;
  }

  /**
   * The values of {@code key} (an UnsafeRow of {@code keyTypes}, as {@link #keyOf} makes): a
   * string as a UTF8String over the row's bytes (so the row must stay unchanged while they are
   * used: a copy), a date or integer as an Integer, NULL as null.
   */
  static Object[] decode(UnsafeRow key, DataType[] keyTypes) {
    Object[] decoded = new Object[keyTypes.length];
    for (int k = 0; k < keyTypes.length; k++) {
      if (!key.isNullAt(k)) {
        decoded[k] =
            keyTypes[k] instanceof StringType ? (Object) key.getUTF8String(k) : key.getInt(k);
      }
    }
    return decoded;
  }

  private boolean sameKey(InternalRow row, UnsafeRow key, boolean words) {
    for (int k = 0; k < keyTypes.length; k++) {
      boolean isNull = row.isNullAt(k);
      if (isNull != key.isNullAt(k)) {
        return false;
      }
      if (isNull) {
        continue;
      }
      boolean same;
      if (!isString[k]) {
        same = row.getInt(k) == key.getInt(k);
      } else if (words) {
        same = sameWords((UnsafeRow) row, key, k);
      } else {
        same = row.getUTF8String(k).equals(key.getUTF8String(k));
      }
      if (!same) {
        return false;
      }
    }
    return true;
  }

  /** Hash of string field {@code k} of {@code row} from its words. */
  private static int wordHash(UnsafeRow row, int k) {
    long offsetAndSize = row.getLong(k);
    int size = (int) offsetAndSize;
    Object base = row.getBaseObject();
    long address = row.getBaseOffset() + (offsetAndSize >>> 32);
    long h = size;
    for (int i = 0; i < size; i += 8) {
      h = h * 0x9E3779B97F4A7C15L + word(base, address + i, size - i);
    }
    return (int) (h ^ (h >>> 32));
  }

  /** Whether string field {@code k} holds the same bytes in both rows. */
  private static boolean sameWords(UnsafeRow row, UnsafeRow key, int k) {
    long a = row.getLong(k);
    long b = key.getLong(k);
    int size = (int) a;
    if (size != (int) b) {
      return false;
    }
    Object baseA = row.getBaseObject();
    Object baseB = key.getBaseObject();
    long addressA = row.getBaseOffset() + (a >>> 32);
    long addressB = key.getBaseOffset() + (b >>> 32);
    for (int i = 0; i < size; i += 8) {
      if (word(baseA, addressA + i, size - i) != word(baseB, addressB + i, size - i)) {
        return false;
      }
    }
    return true;
  }

  /**
   * The string bytes of one 8-byte word at {@code address}, of which {@code remaining} (may be
   * more than 8) belong to the string: UnsafeRow pads each variable-length value to whole words,
   * so the word can be read whole; the bytes past the string are masked off.
   */
  private static long word(Object base, long address, int remaining) {
    long word = Platform.getLong(base, address);
    if (remaining >= 8) {
      return word;
    }
    int bits = 8 * remaining;
    return LITTLE_ENDIAN ? word & ((1L << bits) - 1) : word & (-1L << (64 - bits));
  }
}
