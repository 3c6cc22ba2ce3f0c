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
 * appearance. Rows of Spark's UnsafeRow format (what whole-stage code produces) have their key
 * strings hashed and compared by 8-byte words, in place; other rows through UTF8String. (A group
 * added through one way and looked up through the other would be held twice; its partial sums
 * still add up in the caller's grouped sum.) Not thread-safe: one per task.
 */
final class KeyTable {
  private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

  private final DataType[] keyTypes;
  private final boolean[] isString;
  private final UnsafeProjection keyOf;
  private final int[] slots; // group index + 1 per hash slot, 0 = empty
  private final UnsafeRow[] keys;
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

  /** A table for up to {@code maxGroups} groups (the caller empties it before more). */
  KeyTable(DataType[] keyTypes, int maxGroups) {
    this.keyTypes = keyTypes;
    this.isString = new boolean[keyTypes.length];
    for (int k = 0; k < keyTypes.length; k++) {
      isString[k] = keyTypes[k] instanceof StringType;
    }
    this.keyOf = UnsafeProjection.create(keyTypes);
    this.slots = new int[Integer.highestOneBit(Math.max(2, maxGroups) * 4)];
    this.keys = new UnsafeRow[maxGroups];
    this.hashes = new int[maxGroups];
  }

  int size() {
    return size;
  }

  void clear() {
    Arrays.fill(keys, 0, size, null);
    Arrays.fill(slots, 0);
    size = 0;
  }

  /** The values of group {@code index}'s key, in an array with {@code extra} more slots. */
  Object[] keyValues(int index, int extra) {
    UnsafeRow key = keys[index];
    Object[] values = new Object[keyTypes.length + extra];
    for (int k = 0; k < keyTypes.length; k++) {
      values[k] = key.isNullAt(k) ? null : key.get(k, keyTypes[k]);
    }
    return values;
  }

  /** The row's group index: found by hash and field-wise equality, else added. */
  int indexOf(InternalRow row) {
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
    if (size == keys.length) {
      throw new IllegalStateException("more than " + keys.length + " groups: empty the table first");
    }
    keys[size] = keyOf.apply(row).copy();
    hashes[size] = hash;
    slots[slot] = ++size;
    return size - 1;
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
