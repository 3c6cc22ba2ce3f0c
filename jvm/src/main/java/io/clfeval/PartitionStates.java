package io.clfeval;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

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
 * #{edges <= score} - 1, exact ({@link BinSearch}); loss = -log(c) if y = 1 else -log1p(-c)
 * ({@link LogLoss}), c = score clipped to [eps, 1 - eps]; sums per bin of rows, y, w * loss, w *
 * (y - score)^2, w * score, and w of positives / negatives. A NULL score adds only to its group's
 * row count.
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
    StructField bin = DataTypes.createStructField("bin", DataTypes.IntegerType, true);
    return BatchedStates.statesSchema(input, keyCount, List.of(bin), LONG_FIELDS, DOUBLE_FIELDS);
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
    StructType schema = rows.schema();
    if (schema.fields().length != keyCount + 3) {
      throw new IllegalArgumentException(
          "expected " + keyCount + " key columns, then score, y, weight: " + schema.simpleString());
    }
    double[] edges = BinSearch.parseEdges(edgesText);
    Scan scan = new Scan(schema, keyCount, edges, eps, Math.max(1, maxGroups));
    return BatchedStates.mapPartitions(rows, scan, outputSchema(schema, keyCount));
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
      private int emitBin;
      private boolean emittedAny;

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

      /** The next output row of the held groups, or null (and the table emptied) when done. */
      @Override
      InternalRow nextOutput() {
        while (emitGroup < groups.size()) {
          Group g = groups.get(emitGroup);
          while (emitBin < binCount) {
            int k = emitBin++;
            if (g.counts[2 * k] > 0) {
              emittedAny = true;
              Object[] values = keyValues(emitGroup);
              int at = Group.SUMS * k;
              values[keyCount] = k;
              values[keyCount + 1] = g.counts[2 * k];
              values[keyCount + 2] = g.counts[2 * k + 1];
              values[keyCount + 3] = g.sums[at + Group.LOSS];
              values[keyCount + 4] = g.sums[at + Group.SQUARED_ERROR];
              values[keyCount + 5] = g.sums[at + Group.SCORE];
              values[keyCount + 6] = g.sums[at + Group.W_POS];
              values[keyCount + 7] = g.sums[at + Group.W_NEG];
              return new GenericInternalRow(values);
            }
          }
          boolean unscored = !emittedAny;
          int index = emitGroup++;
          emitBin = 0;
          emittedAny = false;
          if (unscored) {
            Object[] values = keyValues(index);
            values[keyCount + 1] = g.rowCount;
            return new GenericInternalRow(values);
          }
        }
        groups.clear();
        keys.clear();
        emitGroup = 0;
        return null;
      }

      private Object[] keyValues(int index) {
        return keys.keyValues(index, 2 + LONG_FIELDS.length + DOUBLE_FIELDS.length);
      }
    }
  }
}
