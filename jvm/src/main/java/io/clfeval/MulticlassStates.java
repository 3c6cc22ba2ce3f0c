package io.clfeval;

import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The multiclass scan's partial states of each input partition, without exploding rows: each
 * valid row adds one item per class c to its group, keyed by (c, true class y, c is the predicted
 * class, rank of the true class if c = y, bin of p_c), in a hash table from (group, item key) to
 * sums. The caller adds the partitions' rows up with a grouped sum (one exchange, of partial
 * states). Same states as {@code clfeval.spark.aggregate.scan_multiclass_states} (its Spark SQL
 * twin, which explodes every row into K items first), up to the order of float additions.
 *
 * <p>Input columns: {@code keyCount} group key columns (strings, dates or integers; the reject
 * reason last), then y (int, true class index), probs (array of K doubles), pred (int, predicted
 * class index) and weight (double); y, probs, pred and weight are NULL on rejected rows.
 *
 * <p>Per item (c, p = probs[c]), with t = 1 if c = y else 0: n_rows += t, n_pos += t, n_neg += 1
 * - t, w_pos += w if t, w_neg += w if not, loss_sum += w * -log(clip(p)) if t (clip to [eps, 1 -
 * eps]), sq_err_sum += w * (p - t)^2, score_sum += w * p; rank = #{classes with a probability
 * above p_y}; bin = #{edges <= p} - 1 ({@link BinSearch}). As in Spark SQL's sums, w_pos and
 * loss_sum are NULL on items of other classes and w_neg on items of the true class.
 *
 * <p>Output columns: the key columns, class_index, true_index (int), predicted (boolean),
 * true_rank (int; NULL unless c = y), bin (int), n_rows, n_pos, n_neg (long), w_pos, w_neg,
 * loss_sum, sq_err_sum, score_sum (double). A group of rejected rows emits one row: NULL item
 * keys and sums, n_rows its row count. A partition emits and forgets its items whenever it holds
 * {@code maxItems} of them (or as many groups), so memory stays bounded.
 */
public final class MulticlassStates {
  private MulticlassStates() {}

  private static final String[] ITEM_KEYS = {"class_index", "true_index", "predicted", "true_rank"};
  private static final String[] LONG_FIELDS = {"n_rows", "n_pos", "n_neg"};
  private static final String[] DOUBLE_FIELDS = {
    "w_pos", "w_neg", "loss_sum", "sq_err_sum", "score_sum"
  };
  private static final int VALUES = 4 + 1 + LONG_FIELDS.length + DOUBLE_FIELDS.length;
  // Bits of the packed item key; the group index takes the bits above.
  private static final int ITEM_BITS = 40;

  /** Output schema: the key fields of {@code input}, the item keys, bin, the sums. */
  public static StructType outputSchema(StructType input, int keyCount) {
    List<StructField> items =
        List.of(
            DataTypes.createStructField(ITEM_KEYS[0], DataTypes.IntegerType, true),
            DataTypes.createStructField(ITEM_KEYS[1], DataTypes.IntegerType, true),
            DataTypes.createStructField(ITEM_KEYS[2], DataTypes.BooleanType, true),
            DataTypes.createStructField(ITEM_KEYS[3], DataTypes.IntegerType, true),
            DataTypes.createStructField("bin", DataTypes.IntegerType, true));
    return BatchedStates.statesSchema(input, keyCount, items, LONG_FIELDS, DOUBLE_FIELDS);
  }

  /** Whether K classes and {@code bins} bins fit the packed item key (K^2 * 2 * (K+1) * bins). */
  public static boolean fits(int classCount, int bins) {
    double items = (double) classCount * classCount * 2 * (classCount + 1) * bins;
    return items < (double) (1L << ITEM_BITS);
  }

  /**
   * Per-partition states of {@code rows} (a classic Dataset, as PySpark's {@code _jdf} is).
   *
   * @param classCount K, the length of every valid row's probs
   * @param edgesText the bin edges as exact decimal or hexadecimal texts separated by commas
   * @param eps the log-loss clip
   * @param maxItems items a partition holds before it emits their partial sums
   */
  public static Dataset<Row> scan(
      Dataset<Row> rows,
      int keyCount,
      int classCount,
      String edgesText,
      double eps,
      int maxItems) {
    StructType schema = rows.schema();
    if (schema.fields().length != keyCount + 4) {
      throw new IllegalArgumentException(
          "expected " + keyCount + " key columns, then y, probs, pred, weight: "
              + schema.simpleString());
    }
    double[] edges = BinSearch.parseEdges(edgesText);
    if (!fits(classCount, edges.length)) {
      throw new IllegalArgumentException(
          classCount + " classes x " + edges.length + " bins do not fit the item key");
    }
    Scan scan = new Scan(schema, keyCount, classCount, edges, eps, Math.max(1, maxItems));
    return BatchedStates.mapPartitions(rows, scan, outputSchema(schema, keyCount));
  }

  /** The per-partition function (shipped to executors; everything it holds is serializable). */
  static final class Scan extends BatchedStates.BinnedScan {
    private static final long serialVersionUID = 1L;
    private final int classCount;
    private final int maxItems;

    Scan(
        StructType schema, int keyCount, int classCount, double[] edges, double eps, int maxItems) {
      super(schema, keyCount, edges, eps);
      this.classCount = classCount;
      this.maxItems = maxItems;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      return new States(input);
    }

    /** Reads input until maxItems items are held (or the input ends), then emits them. */
    private final class States extends BatchedStates {
      private final int keyCount = keyTypes.length;
      private final int maxGroups = Math.min(maxItems, 1 << 16);
      private final KeyTable keys = keyTable(maxGroups);
      private long[] groupRows = new long[16];
      private boolean[] groupHasItems = new boolean[16];
      // Open addressing: (group << ITEM_BITS | item) + 1 per slot, 0 = empty; sums alongside.
      private long[] slotKeys;
      // Whether an item is of the true class is part of its key (c = y), so one count and one
      // weight sum serve as n_rows = n_pos or n_neg, and as w_pos or w_neg.
      private long[] counts;
      private double[] weightSums;
      private double[] lossSums;
      private double[] sqErrSums;
      private double[] scoreSums;
      private int items;
      private int emitSlot; // slot while emitting items
      private int emitGroup; // then group

      States(Iterator<InternalRow> input) {
        super(input);
        allocate(1 << 12);
      }

      private void allocate(int capacity) {
        slotKeys = new long[capacity];
        counts = new long[capacity];
        weightSums = new double[capacity];
        lossSums = new double[capacity];
        sqErrSums = new double[capacity];
        scoreSums = new double[capacity];
      }

      @Override
      boolean holdsNothing() {
        return keys.size() == 0;
      }

      @Override
      void readUntilFull() {
        int yAt = keyCount;
        int probsAt = keyCount + 1;
        int predAt = keyCount + 2;
        int weightAt = keyCount + 3;
        int k = classCount;
        while (items < maxItems && keys.size() < maxGroups && input.hasNext()) {
          InternalRow row = input.next();
          int group = keys.indexOf(row);
          if (group == groupRows.length) {
            groupRows = Arrays.copyOf(groupRows, 2 * group);
            groupHasItems = Arrays.copyOf(groupHasItems, 2 * group);
          }
          groupRows[group] += 1;
          if (row.isNullAt(probsAt)) {
            continue;
          }
          groupHasItems[group] = true;
          int y = row.getInt(yAt);
          ArrayData probs = row.getArray(probsAt);
          int pred = row.getInt(predAt);
          double w = row.getDouble(weightAt);
          double pTrue = probs.getDouble(y);
          int rank = 0;
          for (int c = 0; c < k; c++) {
            if (probs.getDouble(c) > pTrue) {
              rank++;
            }
          }
          long groupBase = (long) group << ITEM_BITS;
          for (int c = 0; c < k; c++) {
            // + 0.0 turns -0.0 into 0.0 (the edges start at 0.0).
            double p = probs.getDouble(c) + 0.0;
            boolean isTrue = c == y;
            long item = ((long) c * k + y) * 2 + (c == pred ? 1 : 0);
            item = (item * (k + 1) + (isTrue ? rank : k)) * binCount + bins.bin(p);
            int s = slotOf(groupBase | item);
            if (isTrue) {
              double clipped = Math.min(Math.max(p, eps), 1.0 - eps);
              lossSums[s] += w * LogLoss.positive(clipped);
              double error = p - 1.0;
              sqErrSums[s] += w * (error * error);
            } else {
              sqErrSums[s] += w * (p * p);
            }
            counts[s] += 1;
            weightSums[s] += w;
            scoreSums[s] += w * p;
          }
        }
      }

      /** The slot of {@code key} (group and item), added (sums zero) when new. */
      private int slotOf(long key) {
        long stored = key + 1;
        int mask = slotKeys.length - 1;
        long h = key * 0x9E3779B97F4A7C15L;
        int slot = (int) (h ^ (h >>> 32)) & mask;
        while (slotKeys[slot] != 0) {
          if (slotKeys[slot] == stored) {
            return slot;
          }
          slot = (slot + 1) & mask;
        }
        if (2 * (items + 1) > slotKeys.length) {
          grow();
          return slotOf(key);
        }
        slotKeys[slot] = stored;
        items++;
        return slot;
      }

      private void grow() {
        long[] oldKeys = slotKeys;
        long[] oldCounts = counts;
        double[] oldWeights = weightSums;
        double[] oldLoss = lossSums;
        double[] oldSqErr = sqErrSums;
        double[] oldScore = scoreSums;
        allocate(2 * oldKeys.length);
        items = 0;
        for (int old = 0; old < oldKeys.length; old++) {
          if (oldKeys[old] != 0) {
            int s = slotOf(oldKeys[old] - 1);
            counts[s] = oldCounts[old];
            weightSums[s] = oldWeights[old];
            lossSums[s] = oldLoss[old];
            sqErrSums[s] = oldSqErr[old];
            scoreSums[s] = oldScore[old];
          }
        }
      }

      /** The next output row (items, then groups without items), or null when all are out. */
      @Override
      InternalRow nextOutput() {
        while (emitSlot < slotKeys.length) {
          int s = emitSlot++;
          if (slotKeys[s] != 0) {
            return itemRow(s);
          }
        }
        while (emitGroup < keys.size()) {
          int group = emitGroup++;
          if (!groupHasItems[group]) {
            Object[] values = keys.keyValues(group, VALUES);
            values[keyCount + 5] = groupRows[group];
            return new GenericInternalRow(values);
          }
        }
        Arrays.fill(slotKeys, 0);
        Arrays.fill(groupRows, 0);
        Arrays.fill(groupHasItems, false);
        if (slotKeys.length > (1 << 12)) {
          allocate(1 << 12);
        } else {
          Arrays.fill(counts, 0);
          Arrays.fill(weightSums, 0);
          Arrays.fill(lossSums, 0);
          Arrays.fill(sqErrSums, 0);
          Arrays.fill(scoreSums, 0);
        }
        items = 0;
        keys.clear();
        emitSlot = 0;
        emitGroup = 0;
        return null;
      }

      private InternalRow itemRow(int s) {
        long key = slotKeys[s] - 1;
        int group = (int) (key >>> ITEM_BITS);
        long item = key & ((1L << ITEM_BITS) - 1);
        int k = classCount;
        int bin = (int) (item % binCount);
        item /= binCount;
        int rankSlot = (int) (item % (k + 1));
        item /= k + 1;
        boolean predicted = item % 2 == 1;
        item /= 2;
        int y = (int) (item % k);
        int c = (int) (item / k);
        boolean isTrue = c == y;
        Object[] values = keys.keyValues(group, VALUES);
        int at = keyCount;
        values[at] = c;
        values[at + 1] = y;
        values[at + 2] = predicted;
        values[at + 3] = isTrue ? (Object) rankSlot : null;
        values[at + 4] = bin;
        values[at + 5] = isTrue ? counts[s] : 0L;
        values[at + 6] = isTrue ? counts[s] : 0L;
        values[at + 7] = isTrue ? 0L : counts[s];
        values[at + 8] = isTrue ? (Object) weightSums[s] : null;
        values[at + 9] = isTrue ? null : (Object) weightSums[s];
        values[at + 10] = isTrue ? (Object) lossSums[s] : null;
        values[at + 11] = sqErrSums[s];
        values[at + 12] = scoreSums[s];
        return new GenericInternalRow(values);
      }
    }
  }
}
