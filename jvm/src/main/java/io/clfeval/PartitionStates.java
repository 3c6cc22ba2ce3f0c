package io.clfeval;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The binary scan's per-bin sums, read straight from Spark's internal rows, in two steps with one
 * exchange between them. (1) {@link #scan}: each input partition in one pass, a hash table from
 * group key to a dense per-bin buffer, then one compact row per group: its non-empty bins and
 * their sums as three arrays. (2) {@link #states}: those rows hash-partitioned and sorted by group
 * key, each group's rows added into one dense buffer, then one output row per (group, non-empty
 * bin). The exchange moves a row per group and task, not per bin as Spark's partial hash
 * aggregation would (which reduces nothing here: a task emits each key once), then Spark's final
 * sum.
 *
 * <p>Why not a Spark {@code Aggregator} (an earlier version): it receives every input row as a
 * JVM object (a tuple of boxed values built by an encoder) inside Spark's object hash
 * aggregation, which also copies each row's key into a new row to hash it; here a row's fields
 * are read in place and its key hashed from them.
 *
 * <p>Input columns: {@code keyCount} group key columns (strings, dates or integers; the reject
 * reason last), then score (double, NULL on rejected rows), y (int, 1 = positive) and weight
 * (double). Conventions as {@code clfeval.core.bins} and {@code clfeval.spark.aggregate}: bin =
 * #{edges <= score} - 1, exact ({@link BinSearch}); loss = -log(c) if y = 1 else -log1p(-c)
 * ({@link LogLoss}), c = score clipped to [eps, 1 - eps]; sums per bin of rows, y, w * loss, w *
 * (y - score)^2, w * score, and w of positives / negatives. A NULL score adds only to its group's
 * row count.
 *
 * <p>Output columns of {@link #states}: the key columns, bin (int; NULL for a group without
 * scored rows, whose n_rows is then its row count), n_rows, n_pos (long), loss_sum, sq_err_sum,
 * score_sum, w_pos, w_neg (double); one row per (group, bin). A scan task emits and forgets its
 * buffers whenever it holds {@code maxGroups} groups, so its memory stays bounded whatever the
 * number of groups; the merge holds one group at a time (Spark's sort spills what does not fit).
 */
public final class PartitionStates {
  private PartitionStates() {}

  private static final String[] LONG_FIELDS = {"n_rows", "n_pos"};
  private static final String[] DOUBLE_FIELDS = {
    "loss_sum", "sq_err_sum", "score_sum", "w_pos", "w_neg"
  };
  // A group's row count: what its NULL-bin output row reports when no row had a score.
  private static final String ROW_COUNT = "row_count";
  // Fields after the key: of a compact row (row_count, bins, counts, sums), of an output row.
  private static final int PARTIAL_FIELDS = 4;
  private static final int OUTPUT_FIELDS = 1 + LONG_FIELDS.length + DOUBLE_FIELDS.length;

  /** Output schema of {@link #states}: the key fields of {@code input}, then the per-bin fields. */
  public static StructType outputSchema(StructType input, int keyCount) {
    StructField bin = DataTypes.createStructField("bin", DataTypes.IntegerType, true);
    return BatchedStates.statesSchema(input, keyCount, List.of(bin), LONG_FIELDS, DOUBLE_FIELDS);
  }

  /**
   * Schema of {@link #scan}'s compact rows: the key fields of {@code input}, row_count (long),
   * then bins (the group's non-empty bins, ascending), counts (n_rows and n_pos of each listed
   * bin, interleaved) and sums (its five double sums in DOUBLE_FIELDS' order, interleaved); the
   * arrays are NULL for a group without scored rows.
   */
  public static StructType partialSchema(StructType input, int keyCount) {
    List<StructField> arrays =
        List.of(
            DataTypes.createStructField(ROW_COUNT, DataTypes.LongType, false),
            DataTypes.createStructField(
                "bins", DataTypes.createArrayType(DataTypes.IntegerType, false), true),
            DataTypes.createStructField(
                "counts", DataTypes.createArrayType(DataTypes.LongType, false), true),
            DataTypes.createStructField(
                "sums", DataTypes.createArrayType(DataTypes.DoubleType, false), true));
    return BatchedStates.statesSchema(input, keyCount, arrays, new String[0], new String[0]);
  }

  /**
   * Per-partition compact states of {@code rows} (a classic Dataset, as PySpark's {@code _jdf}
   * is), one row per group a task held ({@link #partialSchema}): what {@link #states} merges.
   *
   * @param edgesText the bin edges as exact decimal or hexadecimal texts separated by commas
   * @param eps the log-loss clip
   * @param maxGroups groups a partition holds before it emits their partial sums
   */
  public static Dataset<Row> scan(
      Dataset<Row> rows, int keyCount, String edgesText, double eps, int maxGroups) {
    return scan(rows, keyCount, BinSearch.parseEdges(edgesText), eps, maxGroups);
  }

  /**
   * The per-(group, bin) states of {@code rows} ({@link #outputSchema}): {@link #scan}'s compact
   * rows, hash-partitioned and sorted by group key, each group's rows added up.
   */
  public static Dataset<Row> states(
      Dataset<Row> rows, int keyCount, String edgesText, double eps, int maxGroups) {
    double[] edges = BinSearch.parseEdges(edgesText);
    Dataset<Row> partial = scan(rows, keyCount, edges, eps, maxGroups);
    Merge merge = new Merge(KeyTable.keyTypesOf(partial.schema(), keyCount), edges.length);
    return BatchedStates.mergeByGroup(
        partial, keyCount, merge, outputSchema(rows.schema(), keyCount));
  }

  private static Dataset<Row> scan(
      Dataset<Row> rows, int keyCount, double[] edges, double eps, int maxGroups) {
    StructType schema = rows.schema();
    if (schema.fields().length != keyCount + 3) {
      throw new IllegalArgumentException(
          "expected " + keyCount + " key columns, then score, y, weight: " + schema.simpleString());
    }
    Scan scan = new Scan(schema, keyCount, edges, eps, Math.max(1, maxGroups));
    return BatchedStates.mapPartitions(rows, scan, partialSchema(schema, keyCount));
  }

  /**
   * One group of a partition: its dense per-bin sums, interleaved per bin so that a row updates
   * one or two cache lines instead of seven (a task's groups hold megabytes, far more than the
   * CPU's caches): {@code counts[2b]} rows and {@code counts[2b + 1]} positives of bin b, {@code
   * sums[5b + LOSS ... 5b + W_NEG]} its double sums.
   */
  static final class Group {
    static final int LOSS = 0;
    static final int SQUARED_ERROR = 1;
    static final int SCORE = 2;
    static final int W_POS = 3;
    static final int W_NEG = 4;
    static final int SUMS = 5;

    long rowCount;
    final long[] counts;
    final double[] sums;

    Group(int bins) {
      counts = new long[2 * bins];
      sums = new double[SUMS * bins];
    }

    /** The non-empty bins, ascending. */
    int[] nonEmptyBins() {
      int n = 0;
      for (int b = 0; 2 * b < counts.length; b++) {
        n += counts[2 * b] > 0 ? 1 : 0;
      }
      int[] bins = new int[n];
      int i = 0;
      for (int b = 0; 2 * b < counts.length; b++) {
        if (counts[2 * b] > 0) {
          bins[i++] = b;
        }
      }
      return bins;
    }

    /** This group as {@link #partialSchema}'s fields after the key ({@code out} from {@code at}). */
    void writeCompact(Object[] out, int at) {
      out[at] = rowCount;
      int[] bins = nonEmptyBins();
      if (bins.length == 0) {
        return;
      }
      long[] binCounts = new long[2 * bins.length];
      double[] binSums = new double[SUMS * bins.length];
      for (int i = 0; i < bins.length; i++) {
        int b = bins[i];
        System.arraycopy(counts, 2 * b, binCounts, 2 * i, 2);
        System.arraycopy(sums, SUMS * b, binSums, SUMS * i, SUMS);
      }
      out[at + 1] = UnsafeArrayData.fromPrimitiveArray(bins);
      out[at + 2] = UnsafeArrayData.fromPrimitiveArray(binCounts);
      out[at + 3] = UnsafeArrayData.fromPrimitiveArray(binSums);
    }

    /** Adds a compact row's sums ({@link #partialSchema}'s fields from {@code at}). */
    void addCompact(InternalRow row, int at) {
      rowCount += row.getLong(at);
      if (row.isNullAt(at + 1)) {
        return;
      }
      int[] bins = row.getArray(at + 1).toIntArray();
      long[] binCounts = row.getArray(at + 2).toLongArray();
      double[] binSums = row.getArray(at + 3).toDoubleArray();
      for (int i = 0; i < bins.length; i++) {
        int b = bins[i];
        counts[2 * b] += binCounts[2 * i];
        counts[2 * b + 1] += binCounts[2 * i + 1];
        for (int j = 0; j < SUMS; j++) {
          sums[SUMS * b + j] += binSums[SUMS * i + j];
        }
      }
    }

    void clear() {
      rowCount = 0;
      Arrays.fill(counts, 0L);
      Arrays.fill(sums, 0.0);
    }
  }

  /** The per-partition function (shipped to executors; everything it holds is serializable). */
  static final class Scan extends BatchedStates.BinnedScan {
    private static final long serialVersionUID = 1L;
    private final int maxGroups;

    Scan(StructType schema, int keyCount, double[] edges, double eps, int maxGroups) {
      super(schema, keyCount, edges, eps);
      this.maxGroups = maxGroups;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      return new States(input);
    }

    /** Reads input until maxGroups groups are held (or the input ends), then emits them. */
    private final class States extends BatchedStates {
      private final int keyCount = keyTypes.length;
      private final KeyTable keys = keyTable(maxGroups);
      private final List<Group> groups = new ArrayList<>();
      private int emitGroup; // index into groups while emitting

      States(Iterator<InternalRow> input) {
        super(input);
      }

      @Override
      boolean holdsNothing() {
        return groups.isEmpty();
      }

      @Override
      void readUntilFull() {
        int scoreAt = keyCount;
        int yAt = keyCount + 1;
        int weightAt = keyCount + 2;
        while (groups.size() < maxGroups && input.hasNext()) {
          InternalRow row = input.next();
          int index = keys.indexOf(row);
          if (index == groups.size()) {
            groups.add(new Group(binCount));
          }
          Group g = groups.get(index);
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
          double loss = y == 1 ? LogLoss.positive(c) : LogLoss.negative(c);
          double error = y - p;
          g.counts[2 * bin] += 1;
          g.counts[2 * bin + 1] += y;
          int at = Group.SUMS * bin;
          double[] sums = g.sums;
          sums[at + Group.LOSS] += w * loss;
          sums[at + Group.SQUARED_ERROR] += w * error * error;
          sums[at + Group.SCORE] += w * p;
          sums[at + (y == 1 ? Group.W_POS : Group.W_NEG)] += w;
        }
      }

      /** The next compact row of the held groups, or null (and the table emptied) when done. */
      @Override
      InternalRow nextOutput() {
        if (emitGroup < groups.size()) {
          int index = emitGroup++;
          Object[] values = keys.keyValues(index, PARTIAL_FIELDS);
          groups.get(index).writeCompact(values, keyCount);
          return new GenericInternalRow(values);
        }
        groups.clear();
        keys.clear();
        emitGroup = 0;
        return null;
      }
    }
  }

  /**
   * The merge of {@link #states} (shipped to executors): its input, compact rows sorted by group
   * key, is read one group at a time into one dense buffer, which is then emitted a row per
   * non-empty bin (or one NULL-bin row with the group's row count when no row had a score).
   */
  static final class Merge implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;
    private final DataType[] keyTypes;
    private final int binCount;

    Merge(DataType[] keyTypes, int binCount) {
      this.keyTypes = keyTypes;
      this.binCount = binCount;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      return new Merged(input);
    }

    private final class Merged extends BatchedStates.GroupMerge {
      private final Group group = new Group(binCount);
      private int emitBin;
      private boolean emittedAny;

      Merged(Iterator<InternalRow> input) {
        super(input, keyTypes);
      }

      @Override
      void add(InternalRow row) {
        group.addCompact(row, keyCount);
      }

      @Override
      InternalRow nextOutput() {
        if (!holdsGroup()) {
          return null;
        }
        while (emitBin < binCount) {
          int k = emitBin++;
          if (group.counts[2 * k] > 0) {
            emittedAny = true;
            Object[] values = Arrays.copyOf(keyValues, keyCount + OUTPUT_FIELDS);
            int at = Group.SUMS * k;
            values[keyCount] = k;
            values[keyCount + 1] = group.counts[2 * k];
            values[keyCount + 2] = group.counts[2 * k + 1];
            values[keyCount + 3] = group.sums[at + Group.LOSS];
            values[keyCount + 4] = group.sums[at + Group.SQUARED_ERROR];
            values[keyCount + 5] = group.sums[at + Group.SCORE];
            values[keyCount + 6] = group.sums[at + Group.W_POS];
            values[keyCount + 7] = group.sums[at + Group.W_NEG];
            return new GenericInternalRow(values);
          }
        }
        InternalRow last = null;
        if (!emittedAny) {
          Object[] values = Arrays.copyOf(keyValues, keyCount + OUTPUT_FIELDS);
          values[keyCount + 1] = group.rowCount;
          last = new GenericInternalRow(values);
        }
        group.clear();
        release();
        emitBin = 0;
        emittedAny = false;
        return last;
      }
    }
  }
}
