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
 * them, as the binary scan ({@link PartitionStates}). (1) {@link #scan}: each valid row adds K + 2
 * items to its group, in a hash table from (group, item key) to sums: per class c one keyed by (c,
 * c is the predicted class, bin of p_c; with one-vs-one also the true class y), one keyed by
 * (predicted class, y) (the confusion matrix) and one keyed by (y, rank of y) (top-k); a task emits
 * one compact row per group: its items' packed keys and sums as arrays. (2) {@link #states}: those
 * rows hash-partitioned and sorted by group key, each group's items added up in one hash table,
 * then one output row per (group, item). Same states as {@code
 * clfeval.spark.aggregate.scan_multiclass_states} (its Spark SQL twin, which explodes every row
 * into K + 2 items first), up to the order of float additions.
 *
 * <p>Input columns: {@code keyCount} group key columns (strings, dates or integers; the reject
 * reason last), then y (int, true class index), probs (array of K doubles), pred (int, predicted
 * class index) and weight (double); y, probs, pred and weight are NULL on rejected rows.
 *
 * <p>Per class item (c, p = probs[c]), with t = 1 if c = y else 0: n_pos += t, n_neg += 1 - t,
 * w_pos += w if t, w_neg += w if not, loss_sum += w * -log(clip(p)) if t (clip to [eps, 1 - eps]),
 * sq_err_sum += w * (p - t)^2, score_sum += w * p; bin = #{edges <= p} - 1 ({@link BinSearch}).
 * Per confusion item: n_rows += 1, n_pos += 1, w_pos += w; per rank item (rank = #{classes with
 * a probability above p_y}): n_pos += 1, w_pos += w. As in Spark SQL's sums, a sum over no items
 * is NULL: w_pos and loss_sum without positives, w_neg without negatives, and the score sums of
 * the confusion and rank items.
 *
 * <p>Output columns of {@link #states}: the key columns, class_index, true_index (int), predicted
 * (boolean), true_rank (int), bin (int), n_rows, n_pos, n_neg (long), w_pos, w_neg, loss_sum,
 * sq_err_sum, score_sum (double); a class item has NULL true_index (unless one-vs-one) and
 * true_rank, a confusion item NULL true_rank and bin, a rank item NULL class_index, predicted and
 * bin. A group of rejected rows emits one row: NULL item keys and sums, n_rows its row count. A
 * scan task emits and forgets its items whenever it holds {@code maxItems} of them (or as many
 * groups), so memory stays bounded; the merge holds one group's items at a time.
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
   * then items (the group's packed item keys, see {@link ItemKeys}), counts (positive and negative
   * counts of each, interleaved) and sums (its positive and negative weight, loss, squared error and
   * score sums, interleaved per item, see {@link ItemSums}); the arrays are NULL for a group without
   * valid rows.
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

  /** Whether K classes and {@code bins} bins fit the packed item key ({@link ItemKeys}). */
  public static boolean fits(int classCount, int bins, boolean oneVsOne) {
    return new ItemKeys(classCount, bins, oneVsOne).count() < (double) (1L << ITEM_BITS);
  }

  /**
   * Per-partition compact states of {@code rows} (a classic Dataset, as PySpark's {@code _jdf}
   * is), one row per group a task held ({@link #partialSchema}): what {@link #states} merges.
   *
   * @param classCount K, the length of every valid row's probs
   * @param edgesText the bin edges as exact decimal or hexadecimal texts separated by commas
   * @param eps the log-loss clip
   * @param maxItems items a partition holds before it emits their partial sums
   * @param oneVsOne whether the class items are also keyed by the true class
   */
  public static Dataset<Row> scan(
      Dataset<Row> rows,
      int keyCount,
      int classCount,
      String edgesText,
      double eps,
      int maxItems,
      boolean oneVsOne) {
    ItemKeys itemKeys = new ItemKeys(classCount, BinSearch.parseEdges(edgesText).length, oneVsOne);
    return scan(rows, keyCount, itemKeys, BinSearch.parseEdges(edgesText), eps, maxItems);
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
      int maxItems,
      boolean oneVsOne) {
    double[] edges = BinSearch.parseEdges(edgesText);
    ItemKeys itemKeys = new ItemKeys(classCount, edges.length, oneVsOne);
    Dataset<Row> partial = scan(rows, keyCount, itemKeys, edges, eps, maxItems);
    DataType[] keyTypes = KeyTable.keyTypesOf(partial.schema(), keyCount);
    Merge merge = new Merge(keyTypes, itemKeys);
    return BatchedStates.mergeByGroup(
        partial, keyCount, merge, outputSchema(rows.schema(), keyCount));
  }

  private static Dataset<Row> scan(
      Dataset<Row> rows, int keyCount, ItemKeys itemKeys, double[] edges, double eps, int maxItems) {
    StructType schema = rows.schema();
    if (schema.fields().length != keyCount + 4) {
      throw new IllegalArgumentException(
          "expected " + keyCount + " key columns, then y, probs, pred, weight: "
              + schema.simpleString());
    }
    if (itemKeys.count() >= (double) (1L << ITEM_BITS)) {
      throw new IllegalArgumentException(
          itemKeys.classCount + " classes x " + edges.length + " bins do not fit the item key");
    }
    Scan scan = new Scan(schema, keyCount, itemKeys, edges, eps, Math.max(1, maxItems));
    return BatchedStates.mapPartitions(rows, scan, partialSchema(schema, keyCount));
  }

  /**
   * The packed item keys of K classes and B bins: class items first, {@code ((c * T + t) * 2 +
   * predicted) * B + bin} with T = K and t the true class under one-vs-one (T = 1, t = 0 without),
   * then the K^2 confusion items {@code (y * K + predicted class)}, then the K^2 rank items {@code
   * (y * K + rank)}.
   */
  static final class ItemKeys implements java.io.Serializable {
    private static final long serialVersionUID = 1L;
    static final int CLASS_ITEM = 0;
    static final int CONFUSION_ITEM = 1;
    static final int RANK_ITEM = 2;
    // The fields of an unpacked item key (see unpack); -1 where the kind has none.
    static final int KIND = 0;
    static final int CLASS = 1;
    static final int TRUE_CLASS = 2;
    static final int PREDICTED = 3;
    static final int RANK = 4;
    static final int BIN = 5;
    static final int FIELDS = 6;

    final int classCount;
    final int binCount;
    final boolean oneVsOne;
    private final long classItems;
    private final long square;

    ItemKeys(int classCount, int binCount, boolean oneVsOne) {
      this.classCount = classCount;
      this.binCount = binCount;
      this.oneVsOne = oneVsOne;
      this.classItems = (long) classCount * (oneVsOne ? classCount : 1) * 2 * binCount;
      this.square = (long) classCount * classCount;
    }

    /** How many item keys there are (as a double: it may exceed a long's range). */
    double count() {
      return (double) classItems + 2.0 * square;
    }

    long classItem(int c, int y, boolean predicted, int bin) {
      long item = (long) c * (oneVsOne ? classCount : 1) + (oneVsOne ? y : 0);
      return (item * 2 + (predicted ? 1 : 0)) * binCount + bin;
    }

    long confusionItem(int y, int predicted) {
      return classItems + (long) y * classCount + predicted;
    }

    long rankItem(int y, int rank) {
      return classItems + square + (long) y * classCount + rank;
    }

    /** The fields of {@code item} into {@code fields}, indexed KIND ... BIN (-1: none). */
    void unpack(long item, int[] fields) {
      Arrays.fill(fields, -1);
      if (item < classItems) {
        fields[KIND] = CLASS_ITEM;
        fields[BIN] = (int) (item % binCount);
        item /= binCount;
        fields[PREDICTED] = (int) (item % 2);
        item /= 2;
        int trueClasses = oneVsOne ? classCount : 1;
        if (oneVsOne) {
          fields[TRUE_CLASS] = (int) (item % trueClasses);
        }
        fields[CLASS] = (int) (item / trueClasses);
      } else if (item < classItems + square) {
        long local = item - classItems;
        fields[KIND] = CONFUSION_ITEM;
        fields[TRUE_CLASS] = (int) (local / classCount);
        fields[CLASS] = (int) (local % classCount);
        fields[PREDICTED] = 1;
      } else {
        long local = item - classItems - square;
        fields[KIND] = RANK_ITEM;
        fields[TRUE_CLASS] = (int) (local / classCount);
        fields[RANK] = (int) (local % classCount);
      }
    }
  }

  /**
   * An open-addressing hash table from a long key to an item's sums: its positive and negative
   * counts and, interleaved per slot, its positive and negative weight, loss, squared error and
   * score sums. The scan keys it by (group index << ITEM_BITS | item), the merge by item alone.
   */
  static final class ItemSums {
    static final int COUNTS = 2; // positives, negatives
    static final int W_POS = 0;
    static final int W_NEG = 1;
    static final int LOSS = 2;
    static final int SQUARED_ERROR = 3;
    static final int SCORE = 4;
    static final int SUMS = 5;
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
      counts = new long[COUNTS * slots];
      sums = new double[SUMS * slots];
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
          System.arraycopy(oldCounts, COUNTS * old, counts, COUNTS * s, COUNTS);
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
        for (int j = 0; j < COUNTS; j++) {
          counts[COUNTS * s + j] += itemCounts[COUNTS * i + j];
        }
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
    private final ItemKeys itemKeys;
    private final int maxItems;

    Scan(
        StructType schema,
        int keyCount,
        ItemKeys itemKeys,
        double[] edges,
        double eps,
        int maxItems) {
      super(schema, keyCount, edges, eps);
      this.itemKeys = itemKeys;
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
        int k = itemKeys.classCount;
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
          long groupBase = (long) group << ITEM_BITS;
          double[] sums = table.sums;
          long[] counts = table.counts;
          for (int c = 0; c < k; c++) {
            // + 0.0 turns -0.0 into 0.0 (the edges start at 0.0).
            double p = probs.getDouble(c) + 0.0;
            if (p > pTrue) {
              rank++;
            }
            long item = itemKeys.classItem(c, y, c == pred, bins.bin(p));
            int s = table.slotOf(groupBase | item);
            sums = table.sums;
            counts = table.counts;
            int at = ItemSums.SUMS * s;
            if (c == y) {
              double clipped = Math.min(Math.max(p, eps), 1.0 - eps);
              sums[at + ItemSums.LOSS] += w * LogLoss.positive(clipped);
              double error = p - 1.0;
              sums[at + ItemSums.SQUARED_ERROR] += w * (error * error);
              sums[at + ItemSums.W_POS] += w;
              counts[ItemSums.COUNTS * s] += 1;
            } else {
              sums[at + ItemSums.SQUARED_ERROR] += w * (p * p);
              sums[at + ItemSums.W_NEG] += w;
              counts[ItemSums.COUNTS * s + 1] += 1;
            }
            sums[at + ItemSums.SCORE] += w * p;
          }
          addCount(groupBase | itemKeys.confusionItem(y, pred), w);
          addCount(groupBase | itemKeys.rankItem(y, rank), w);
        }
        orderSlotsByGroup();
      }

      /** One more positive of weight {@code w} on the item {@code key} (a count item). */
      private void addCount(long key, double w) {
        int s = table.slotOf(key);
        table.counts[ItemSums.COUNTS * s] += 1;
        table.sums[ItemSums.SUMS * s + ItemSums.W_POS] += w;
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
            long[] counts = new long[ItemSums.COUNTS * n];
            double[] sums = new double[ItemSums.SUMS * n];
            for (int i = 0; i < n; i++) {
              int s = slotsByGroup[from + i];
              items[i] = (table.keys[s] - 1) & mask;
              System.arraycopy(
                  table.counts, ItemSums.COUNTS * s, counts, ItemSums.COUNTS * i, ItemSums.COUNTS);
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
    private final ItemKeys itemKeys;

    Merge(DataType[] keyTypes, ItemKeys itemKeys) {
      this.keyTypes = keyTypes;
      this.itemKeys = itemKeys;
    }

    @Override
    public Iterator<InternalRow> call(Iterator<InternalRow> input) {
      return new Merged(input);
    }

    private final class Merged extends BatchedStates.GroupMerge {
      private final ItemSums table = new ItemSums();
      private final int[] item = new int[ItemKeys.FIELDS]; // an emitted slot's unpacked key
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
        itemKeys.unpack(table.keys[s] - 1, item);
        long positives = table.counts[ItemSums.COUNTS * s];
        long negatives = table.counts[ItemSums.COUNTS * s + 1];
        double[] sums = table.sums;
        int at = ItemSums.SUMS * s;
        boolean classItem = item[ItemKeys.KIND] == ItemKeys.CLASS_ITEM;
        Object[] values = Arrays.copyOf(keyValues, keyCount + VALUES);
        int v = keyCount;
        values[v] = orNull(item[ItemKeys.CLASS]);
        values[v + 1] = orNull(item[ItemKeys.TRUE_CLASS]);
        values[v + 2] = item[ItemKeys.PREDICTED] < 0 ? null : (Object) (item[ItemKeys.PREDICTED] == 1);
        values[v + 3] = orNull(item[ItemKeys.RANK]);
        values[v + 4] = orNull(item[ItemKeys.BIN]);
        values[v + 5] = item[ItemKeys.KIND] == ItemKeys.CONFUSION_ITEM ? positives : 0L;
        values[v + 6] = positives;
        values[v + 7] = negatives;
        values[v + 8] = positives > 0 ? (Object) sums[at + ItemSums.W_POS] : null;
        values[v + 9] = negatives > 0 ? (Object) sums[at + ItemSums.W_NEG] : null;
        values[v + 10] = classItem && positives > 0 ? (Object) sums[at + ItemSums.LOSS] : null;
        values[v + 11] = classItem ? (Object) sums[at + ItemSums.SQUARED_ERROR] : null;
        values[v + 12] = classItem ? (Object) sums[at + ItemSums.SCORE] : null;
        return new GenericInternalRow(values);
      }

      private Object orNull(int field) {
        return field < 0 ? null : (Object) field;
      }
    }
  }
}
