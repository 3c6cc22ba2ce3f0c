package io.clfeval;

import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * The multiclass scan's states, without exploding rows, in two steps with one exchange between
 * them, as the binary scan ({@link PartitionStates}). (1) {@link #scan}: each valid row adds one
 * item per class c to its group, keyed by (c, true class y, c is the predicted class, rank of the
 * true class if c = y, bin of p_c), in a hash table from (group, item key) to sums; a task emits
 * one compact row per group: its items' packed keys and sums as arrays. (2) {@link #states}: those
 * rows hash-partitioned and sorted by group key, each group's items added up in one hash table,
 * then one output row per (group, item). Same states as {@code
 * clfeval.spark.aggregate.scan_multiclass_states} (its Spark SQL twin, which explodes every row
 * into K items first), up to the order of float additions.
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
 * <p>Output columns of {@link #states}: the key columns, class_index, true_index (int), predicted
 * (boolean), true_rank (int; NULL unless c = y), bin (int), n_rows, n_pos, n_neg (long), w_pos,
 * w_neg, loss_sum, sq_err_sum, score_sum (double). A group of rejected rows emits one row: NULL
 * item keys and sums, n_rows its row count. A scan task emits and forgets its items whenever it
 * holds {@code maxItems} of them (or as many groups), so memory stays bounded; the merge holds one
 * group's items at a time.
 */
public final class MulticlassStates {
  private MulticlassStates() {}

  private static final String[] ITEM_KEYS = {"class_index", "true_index", "predicted", "true_rank"};
  private static final String[] LONG_FIELDS = {"n_rows", "n_pos", "n_neg"};
  private static final String[] DOUBLE_FIELDS = {
    "w_pos", "w_neg", "loss_sum", "sq_err_sum", "score_sum"
  };
  private static final int VALUES = 4 + 1 + LONG_FIELDS.length + DOUBLE_FIELDS.length;
  // Fields after the key of a compact row: row_count, items, counts, sums.
  private static final int PARTIAL_FIELDS = 4;
  // Bits of the packed item key; the scan's group index takes the bits above.
  private static final int ITEM_BITS = 40;

  /** Output schema of {@link #states}: the key fields of {@code input}, the item keys, bin, sums. */
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

  /**
   * Schema of {@link #scan}'s compact rows: the key fields of {@code input}, row_count (long),
   * then items (the group's packed item keys, see {@link ItemSums#pack}), counts (items of each)
   * and sums (its weight, loss, squared error and score sums, interleaved per item, see {@link
   * ItemSums}); the arrays are NULL for a group without valid rows.
   */
  public static StructType partialSchema(StructType input, int keyCount) {
    List<StructField> arrays =
        List.of(
            DataTypes.createStructField("row_count", DataTypes.LongType, false),
            DataTypes.createStructField(
                "items", DataTypes.createArrayType(DataTypes.LongType, false), true),
            DataTypes.createStructField(
                "counts", DataTypes.createArrayType(DataTypes.LongType, false), true),
            DataTypes.createStructField(
                "sums", DataTypes.createArrayType(DataTypes.DoubleType, false), true));
    return BatchedStates.statesSchema(input, keyCount, arrays, new String[0], new String[0]);
  }

  /** Whether K classes and {@code bins} bins fit the packed item key (K^2 * 2 * (K+1) * bins). */
  public static boolean fits(int classCount, int bins) {
    double items = (double) classCount * classCount * 2 * (classCount + 1) * bins;
    return items < (double) (1L << ITEM_BITS);
  }

  /**
   * Per-partition compact states of {@code rows} (a classic Dataset, as PySpark's {@code _jdf}
   * is), one row per group a task held ({@link #partialSchema}): what {@link #states} merges.
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
    return scan(rows, keyCount, classCount, BinSearch.parseEdges(edgesText), eps, maxItems);
  }

  /**
   * The per-(group, item) states of {@code rows} ({@link #outputSchema}): {@link #scan}'s compact
   * rows, hash-partitioned and sorted by group key, each group's items added up.
   */
  public static Dataset<Row> states(
      Dataset<Row> rows,
      int keyCount,
      int classCount,
      String edgesText,
      double eps,
      int maxItems) {
    double[] edges = BinSearch.parseEdges(edgesText);
    Dataset<Row> partial = scan(rows, keyCount, classCount, edges, eps, maxItems);
    DataType[] keyTypes = KeyTable.keyTypesOf(partial.schema(), keyCount);
    Merge merge = new Merge(keyTypes, classCount, edges.length);
    return BatchedStates.mergeByGroup(
        partial, keyCount, merge, outputSchema(rows.schema(), keyCount));
  }

  private static Dataset<Row> scan(
      Dataset<Row> rows, int keyCount, int classCount, double[] edges, double eps, int maxItems) {
    StructType schema = rows.schema();
    if (schema.fields().length != keyCount + 4) {
      throw new IllegalArgumentException(
          "expected " + keyCount + " key columns, then y, probs, pred, weight: "
              + schema.simpleString());
    }
    if (!fits(classCount, edges.length)) {
      throw new IllegalArgumentException(
          classCount + " classes x " + edges.length + " bins do not fit the item key");
    }
    Scan scan = new Scan(schema, keyCount, classCount, edges, eps, Math.max(1, maxItems));
    return BatchedStates.mapPartitions(rows, scan, partialSchema(schema, keyCount));
  }

  /**
   * An open-addressing hash table from a long key to an item's sums: a count and, interleaved per
   * slot, its weight, loss, squared error and score sums. The scan keys it by (group index <<
   * ITEM_BITS | item), the merge by item alone. Whether an item is of the true class is part of
   * its key (c = y), so one count and one weight sum serve as n_rows = n_pos or n_neg, and as
   * w_pos or w_neg.
   */
  static final class ItemSums {
    static final int WEIGHT = 0;
    static final int LOSS = 1;
    static final int SQUARED_ERROR = 2;
    static final int SCORE = 3;
    static final int SUMS = 4;
    private static final int INITIAL_SLOTS = 1 << 12;

    long[] keys; // key + 1 per slot, 0 = empty
    long[] counts;
    double[] sums;
    int size;

    ItemSums() {
      allocate(INITIAL_SLOTS);
    }

    private void allocate(int slots) {
      keys = new long[slots];
      counts = new long[slots];
      sums = new double[SUMS * slots];
    }

    // The fields of an unpacked item key (see unpack).
    static final int CLASS = 0;
    static final int TRUE_CLASS = 1;
    static final int PREDICTED = 2;
    static final int RANK = 3;
    static final int BIN = 4;

    /** The item key of class c, true class y, predicted class pred, true-class rank, bin. */
    static long pack(int c, int y, int pred, int rank, int bin, int k, int binCount) {
      long item = ((long) c * k + y) * 2 + (c == pred ? 1 : 0);
      return (item * (k + 1) + (c == y ? rank : k)) * binCount + bin;
    }

    /**
     * {@link #pack}'s fields of {@code item} into {@code fields}, indexed CLASS ... BIN: PREDICTED
     * is 1 where c is the predicted class, RANK is k where c is not the true class.
     */
    static void unpack(long item, int k, int binCount, int[] fields) {
      fields[BIN] = (int) (item % binCount);
      item /= binCount;
      fields[RANK] = (int) (item % (k + 1));
      item /= k + 1;
      fields[PREDICTED] = (int) (item % 2);
      item /= 2;
      fields[TRUE_CLASS] = (int) (item % k);
      fields[CLASS] = (int) (item / k);
    }

    /** The slot of {@code key}, added (sums zero) when new. */
    int slotOf(long key) {
      long stored = key + 1;
      int mask = keys.length - 1;
      long h = key * 0x9E3779B97F4A7C15L;
      int slot = (int) (h ^ (h >>> 32)) & mask;
      while (keys[slot] != 0) {
        if (keys[slot] == stored) {
          return slot;
        }
        slot = (slot + 1) & mask;
      }
      if (2 * (size + 1) > keys.length) {
        grow();
        return slotOf(key);
      }
      keys[slot] = stored;
      size++;
      return slot;
    }

    private void grow() {
      long[] oldKeys = keys;
      long[] oldCounts = counts;
      double[] oldSums = sums;
      allocate(2 * oldKeys.length);
      size = 0;
      for (int old = 0; old < oldKeys.length; old++) {
        if (oldKeys[old] != 0) {
          int s = slotOf(oldKeys[old] - 1);
          counts[s] = oldCounts[old];
          System.arraycopy(oldSums, SUMS * old, sums, SUMS * s, SUMS);
        }
      }
    }

    /** Adds a compact row's items ({@link #partialSchema}'s arrays from field {@code at}). */
    void addCompact(InternalRow row, int at) {
      long[] items = row.getArray(at).toLongArray();
      long[] itemCounts = row.getArray(at + 1).toLongArray();
      double[] itemSums = row.getArray(at + 2).toDoubleArray();
      for (int i = 0; i < items.length; i++) {
        int s = slotOf(items[i]);
        counts[s] += itemCounts[i];
        for (int j = 0; j < SUMS; j++) {
          sums[SUMS * s + j] += itemSums[SUMS * i + j];
        }
      }
    }

    /** Empties the table (back to its initial size if it grew). */
    void clear() {
      if (keys.length > INITIAL_SLOTS) {
        allocate(INITIAL_SLOTS);
      } else {
        Arrays.fill(keys, 0L);
        Arrays.fill(counts, 0L);
        Arrays.fill(sums, 0.0);
      }
      size = 0;
    }
  }

  /** The scan's per-partition function (shipped to executors; all it holds is serializable). */
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
      private final ItemSums table = new ItemSums();
      private long[] groupRows = new long[16];
      // While emitting: the held slots ordered by group, and where each group's slots start.
      private int[] slotsByGroup;
      private int[] groupStart;
      private int emitGroup;

      States(Iterator<InternalRow> input) {
        super(input);
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
        while (table.size < maxItems && keys.size() < maxGroups && input.hasNext()) {
          InternalRow row = input.next();
          int group = keys.indexOf(row);
          if (group == groupRows.length) {
            groupRows = Arrays.copyOf(groupRows, 2 * group);
          }
          groupRows[group] += 1;
          if (row.isNullAt(probsAt)) {
            continue;
          }
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
            long item = ItemSums.pack(c, y, pred, rank, bins.bin(p), k, binCount);
            int s = table.slotOf(groupBase | item);
            int at = ItemSums.SUMS * s;
            double[] sums = table.sums;
            if (c == y) {
              double clipped = Math.min(Math.max(p, eps), 1.0 - eps);
              sums[at + ItemSums.LOSS] += w * LogLoss.positive(clipped);
              double error = p - 1.0;
              sums[at + ItemSums.SQUARED_ERROR] += w * (error * error);
            } else {
              sums[at + ItemSums.SQUARED_ERROR] += w * (p * p);
            }
            table.counts[s] += 1;
            sums[at + ItemSums.WEIGHT] += w;
            sums[at + ItemSums.SCORE] += w * p;
          }
        }
        orderSlotsByGroup();
      }

      /** Counting sort of the held slots by their group (the key's bits above ITEM_BITS). */
      private void orderSlotsByGroup() {
        int groups = keys.size();
        groupStart = new int[groups + 1];
        long[] slotKeys = table.keys;
        for (long stored : slotKeys) {
          if (stored != 0) {
            groupStart[(int) ((stored - 1) >>> ITEM_BITS) + 1]++;
          }
        }
        for (int g = 0; g < groups; g++) {
          groupStart[g + 1] += groupStart[g];
        }
        int[] next = Arrays.copyOf(groupStart, groups);
        slotsByGroup = new int[table.size];
        for (int s = 0; s < slotKeys.length; s++) {
          if (slotKeys[s] != 0) {
            slotsByGroup[next[(int) ((slotKeys[s] - 1) >>> ITEM_BITS)]++] = s;
          }
        }
      }

      /** The next compact row of the held groups, or null (and everything emptied) when done. */
      @Override
      InternalRow nextOutput() {
        if (emitGroup < keys.size()) {
          int group = emitGroup++;
          Object[] values = keys.keyValues(group, PARTIAL_FIELDS);
          values[keyCount] = groupRows[group];
          int from = groupStart[group];
          int n = groupStart[group + 1] - from;
          if (n > 0) {
            long mask = (1L << ITEM_BITS) - 1;
            long[] items = new long[n];
            long[] counts = new long[n];
            double[] sums = new double[ItemSums.SUMS * n];
            for (int i = 0; i < n; i++) {
              int s = slotsByGroup[from + i];
              items[i] = (table.keys[s] - 1) & mask;
              counts[i] = table.counts[s];
              System.arraycopy(
                  table.sums, ItemSums.SUMS * s, sums, ItemSums.SUMS * i, ItemSums.SUMS);
            }
            values[keyCount + 1] = UnsafeArrayData.fromPrimitiveArray(items);
            values[keyCount + 2] = UnsafeArrayData.fromPrimitiveArray(counts);
            values[keyCount + 3] = UnsafeArrayData.fromPrimitiveArray(sums);
          }
          return new GenericInternalRow(values);
        }
        table.clear();
        Arrays.fill(groupRows, 0);
        keys.clear();
        slotsByGroup = null;
        groupStart = null;
        emitGroup = 0;
        return null;
      }
    }
  }

  /**
   * The merge of {@link #states} (shipped to executors): its input, compact rows sorted by group
   * key, is read one group at a time into one item table, which is then emitted a row per item
   * (or one row of NULL items with the group's row count when it had no valid row).
   */
  static final class Merge implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;
    private final DataType[] keyTypes;
    private final int classCount;
    private final int binCount;

    Merge(DataType[] keyTypes, int classCount, int binCount) {
      this.keyTypes = keyTypes;
      this.classCount = classCount;
      this.binCount = binCount;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      return new Merged(input);
    }

    private final class Merged extends BatchedStates.GroupMerge {
      private final ItemSums table = new ItemSums();
      private final int[] item = new int[5]; // an emitted slot's unpacked key
      private long rowCount;
      private int emitSlot;
      private boolean emittedAny;

      Merged(Iterator<InternalRow> input) {
        super(input, keyTypes);
      }

      @Override
      void add(InternalRow row) {
        rowCount += row.getLong(keyCount);
        if (!row.isNullAt(keyCount + 1)) {
          table.addCompact(row, keyCount + 1);
        }
      }

      @Override
      InternalRow nextOutput() {
        if (!holdsGroup()) {
          return null;
        }
        while (emitSlot < table.keys.length) {
          int s = emitSlot++;
          if (table.keys[s] != 0) {
            emittedAny = true;
            return itemRow(s);
          }
        }
        InternalRow last = null;
        if (!emittedAny) {
          Object[] values = Arrays.copyOf(keyValues, keyCount + VALUES);
          values[keyCount + 5] = rowCount;
          last = new GenericInternalRow(values);
        }
        table.clear();
        release();
        rowCount = 0;
        emitSlot = 0;
        emittedAny = false;
        return last;
      }

      /** The output row of slot {@code s}: its item key unpacked, then its sums. */
      private InternalRow itemRow(int s) {
        ItemSums.unpack(table.keys[s] - 1, classCount, binCount, item);
        boolean isTrue = item[ItemSums.CLASS] == item[ItemSums.TRUE_CLASS];
        long count = table.counts[s];
        double[] sums = table.sums;
        int at = ItemSums.SUMS * s;
        Object[] values = Arrays.copyOf(keyValues, keyCount + VALUES);
        int v = keyCount;
        values[v] = item[ItemSums.CLASS];
        values[v + 1] = item[ItemSums.TRUE_CLASS];
        values[v + 2] = item[ItemSums.PREDICTED] == 1;
        values[v + 3] = isTrue ? (Object) item[ItemSums.RANK] : null;
        values[v + 4] = item[ItemSums.BIN];
        values[v + 5] = isTrue ? count : 0L;
        values[v + 6] = isTrue ? count : 0L;
        values[v + 7] = isTrue ? 0L : count;
        values[v + 8] = isTrue ? (Object) sums[at + ItemSums.WEIGHT] : null;
        values[v + 9] = isTrue ? null : (Object) sums[at + ItemSums.WEIGHT];
        values[v + 10] = isTrue ? (Object) sums[at + ItemSums.LOSS] : null;
        values[v + 11] = sums[at + ItemSums.SQUARED_ERROR];
        values[v + 12] = sums[at + ItemSums.SCORE];
        return new GenericInternalRow(values);
      }
    }
  }
}
