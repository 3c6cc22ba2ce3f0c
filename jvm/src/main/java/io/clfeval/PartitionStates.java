package io.clfeval;

import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.Platform;

/**
 * The binary scan's per-bin sums of each input partition, read straight from Spark's internal
 * rows: one pass, a hash table from group key to a dense per-bin buffer, then one output row per
 * (group, non-empty bin). The caller adds the partitions' rows up with a grouped sum (one
 * exchange, of partial states, never of input rows).
 *
 * <p>Why not a Spark {@code Aggregator} (the previous version): it receives every input row as
 * a JVM object (a tuple of boxed values built by an encoder) inside Spark's object hash
 * aggregation, which also copies each row's key into a new row to hash it; here a row's fields
 * are read in place and its key hashed from them.
 *
 * <p>Input columns: {@code keyCount} group key columns (strings, dates or integers; the reject
 * reason last), then score (double, NULL on rejected rows), y (int, 1 = positive) and weight
 * (double). Conventions as {@code clfeval.core.bins} and {@code clfeval.spark.aggregate}: bin =
 * #{edges <= score} - 1, exact ({@link BinSearch}); loss = -log(c) if y = 1 else -log1p(-c), c =
 * score clipped to [eps, 1 - eps]; sums per bin of rows, y, w * loss, w * (y - score)^2, w *
 * score, and w of positives / negatives. A NULL score adds only to its group's row count.
 *
 * <p>Output columns: the key columns, bin (int; NULL for a group without scored rows, whose
 * n_rows is then its row count), n_rows, n_pos (long), loss_sum, sq_err_sum, score_sum, w_pos,
 * w_neg (double). A partition emits and forgets its buffers whenever it holds {@code maxGroups}
 * groups, so memory stays bounded whatever the number of groups; those rows are partial sums
 * like the others.
 */
public final class PartitionStates {
  private PartitionStates() {}

  private static final String[] LONG_FIELDS = {"n_rows", "n_pos"};
  private static final String[] DOUBLE_FIELDS = {
    "loss_sum", "sq_err_sum", "score_sum", "w_pos", "w_neg"
  };

  /** Output schema: the key fields of {@code input}, then the per-bin fields. */
  public static StructType outputSchema(StructType input, int keyCount) {
    List<StructField> fields = new ArrayList<>();
    for (int k = 0; k < keyCount; k++) {
      fields.add(input.fields()[k]);
    }
    fields.add(DataTypes.createStructField("bin", DataTypes.IntegerType, true));
    for (String name : LONG_FIELDS) {
      fields.add(DataTypes.createStructField(name, DataTypes.LongType, true));
    }
    for (String name : DOUBLE_FIELDS) {
      fields.add(DataTypes.createStructField(name, DataTypes.DoubleType, true));
    }
    return DataTypes.createStructType(fields);
  }

  /**
   * Per-partition states of {@code rows} (a classic Dataset, as PySpark's {@code _jdf} is).
   *
   * @param edgesText the bin edges as exact decimal or hexadecimal texts separated by commas
   * @param eps the log-loss clip
   * @param maxGroups groups a partition holds before it emits their partial sums
   */
  public static Dataset<Row> scan(
      Dataset<Row> rows, int keyCount, String edgesText, double eps, int maxGroups) {
    org.apache.spark.sql.classic.Dataset<Row> classic =
        (org.apache.spark.sql.classic.Dataset<Row>) rows;
    StructType schema = classic.schema();
    if (schema.fields().length != keyCount + 3) {
      throw new IllegalArgumentException(
          "expected " + keyCount + " key columns, then score, y, weight: " + schema.simpleString());
    }
    DataType[] keyTypes = new DataType[keyCount];
    for (int k = 0; k < keyCount; k++) {
      keyTypes[k] = schema.fields()[k].dataType();
      if (!(keyTypes[k] instanceof org.apache.spark.sql.types.StringType
          || keyTypes[k] == DataTypes.DateType
          || keyTypes[k] == DataTypes.IntegerType)) {
        throw new IllegalArgumentException("unsupported key type " + keyTypes[k]);
      }
    }
    Scan scan = new Scan(keyTypes, BinSearch.parseEdges(edgesText), eps, Math.max(1, maxGroups));
    RDD<InternalRow> input = classic.queryExecution().toRdd();
    RDD<InternalRow> states = input.toJavaRDD().mapPartitions(scan).rdd();
    return classic
        .sparkSession()
        .internalCreateDataFrame(states, outputSchema(schema, keyCount), false);
  }

  /** One group of a partition: its key (a copy), hash and dense per-bin sums. */
  static final class Group {
    final UnsafeRow key;
    final int hash;
    long rowCount;
    final long[] rows;
    final long[] positives;
    final double[] lossSums;
    final double[] squaredErrorSums;
    final double[] scoreSums;
    final double[] positiveWeights;
    final double[] negativeWeights;

    Group(UnsafeRow key, int hash, int bins) {
      this.key = key;
      this.hash = hash;
      rows = new long[bins];
      positives = new long[bins];
      lossSums = new double[bins];
      squaredErrorSums = new double[bins];
      scoreSums = new double[bins];
      positiveWeights = new double[bins];
      negativeWeights = new double[bins];
    }
  }

  /** The per-partition function (shipped to executors; everything it holds is serializable). */
  static final class Scan implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;
    private final DataType[] keyTypes;
    private final boolean[] isString;
    private final BinSearch bins;
    private final int binCount;
    private final double eps;
    private final int maxGroups;

    Scan(DataType[] keyTypes, double[] edges, double eps, int maxGroups) {
      this.keyTypes = keyTypes;
      this.isString = new boolean[keyTypes.length];
      for (int k = 0; k < keyTypes.length; k++) {
        isString[k] = keyTypes[k] instanceof org.apache.spark.sql.types.StringType;
      }
      this.bins = new BinSearch(edges);
      this.binCount = edges.length;
      this.eps = eps;
      this.maxGroups = maxGroups;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      return new States(input);
    }

    private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

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

    /** Reads input until maxGroups groups are held (or the input ends), then emits them. */
    private final class States implements Iterator<InternalRow> {
      private final Iterator<InternalRow> input;
      private final UnsafeProjection keyOf = UnsafeProjection.create(keyTypes);
      private final int keyCount = keyTypes.length;
      private final Group[] table;
      private final List<Group> groups = new ArrayList<>();
      private int emitGroup = -1; // index into groups while emitting, -1 while reading
      private int emitBin;
      private boolean emittedAny;
      private InternalRow next;

      States(Iterator<InternalRow> input) {
        this.input = input;
        int capacity = Integer.highestOneBit(Math.max(2, maxGroups) * 4);
        table = new Group[capacity];
      }

      @Override
      public boolean hasNext() {
        while (next == null) {
          if (emitGroup < 0) {
            if (!input.hasNext() && groups.isEmpty()) {
              return false;
            }
            readUntilFull();
            emitGroup = 0;
            emitBin = 0;
            emittedAny = false;
          }
          next = nextOutput();
        }
        return true;
      }

      @Override
      public InternalRow next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        InternalRow row = next;
        next = null;
        return row;
      }

      private void readUntilFull() {
        int scoreAt = keyCount;
        int yAt = keyCount + 1;
        int weightAt = keyCount + 2;
        while (groups.size() < maxGroups && input.hasNext()) {
          InternalRow row = input.next();
          Group g = groupOf(row);
          g.rowCount += 1;
          if (row.isNullAt(scoreAt)) {
            continue;
          }
          // + 0.0 turns -0.0 into 0.0 (the edges start at 0.0).
          double p = row.getDouble(scoreAt) + 0.0;
          int y = row.getInt(yAt);
          double w = row.getDouble(weightAt);
          int bin = bins.bin(p);
          double c = Math.min(Math.max(p, eps), 1.0 - eps);
          // StrictMath: the same last bit as Spark SQL's log and log1p (the fallback path).
          double loss = y == 1 ? -StrictMath.log(c) : -StrictMath.log1p(-c);
          double error = y - p;
          g.rows[bin] += 1;
          g.positives[bin] += y;
          g.lossSums[bin] += w * loss;
          g.squaredErrorSums[bin] += w * error * error;
          g.scoreSums[bin] += w * p;
          if (y == 1) {
            g.positiveWeights[bin] += w;
          } else {
            g.negativeWeights[bin] += w;
          }
        }
      }

      /**
       * The row's group: found by hash and field-wise equality, else added. Rows of Spark's
       * UnsafeRow format (what the scan's whole-stage code produces) have their key strings
       * hashed and compared by 8-byte words, in place; other rows through UTF8String. (A group
       * added through one way and looked up through the other would be held twice; its partial
       * sums still add up in the caller's grouped sum.)
       */
      private Group groupOf(InternalRow row) {
        boolean words = row instanceof UnsafeRow;
        int hash = 17;
        for (int k = 0; k < keyCount; k++) {
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
        int mask = table.length - 1;
        int slot = (hash ^ (hash >>> 16)) & mask;
        while (table[slot] != null) {
          Group g = table[slot];
          if (g.hash == hash && sameKey(row, g.key, words)) {
            return g;
          }
          slot = (slot + 1) & mask;
        }
        Group g = new Group(keyOf.apply(row).copy(), hash, binCount);
        table[slot] = g;
        groups.add(g);
        return g;
      }

      private boolean sameKey(InternalRow row, UnsafeRow key, boolean words) {
        for (int k = 0; k < keyCount; k++) {
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

      /** The next output row of the held groups, or null (and the table emptied) when done. */
      private InternalRow nextOutput() {
        while (emitGroup < groups.size()) {
          Group g = groups.get(emitGroup);
          while (emitBin < binCount) {
            int k = emitBin++;
            if (g.rows[k] > 0) {
              emittedAny = true;
              Object[] values = keyValues(g.key);
              values[keyCount] = k;
              values[keyCount + 1] = g.rows[k];
              values[keyCount + 2] = g.positives[k];
              values[keyCount + 3] = g.lossSums[k];
              values[keyCount + 4] = g.squaredErrorSums[k];
              values[keyCount + 5] = g.scoreSums[k];
              values[keyCount + 6] = g.positiveWeights[k];
              values[keyCount + 7] = g.negativeWeights[k];
              return new GenericInternalRow(values);
            }
          }
          boolean unscored = !emittedAny;
          emitGroup++;
          emitBin = 0;
          emittedAny = false;
          if (unscored) {
            Object[] values = keyValues(g.key);
            values[keyCount + 1] = g.rowCount;
            return new GenericInternalRow(values);
          }
        }
        groups.clear();
        java.util.Arrays.fill(table, null);
        emitGroup = -1;
        return null;
      }

      private Object[] keyValues(UnsafeRow key) {
        Object[] values = new Object[keyCount + 2 + LONG_FIELDS.length + DOUBLE_FIELDS.length];
        for (int k = 0; k < keyCount; k++) {
          values[k] = key.isNullAt(k) ? null : key.get(k, keyTypes[k]);
        }
        return values;
      }
    }
  }
}
