package io.clfeval;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * A partition's partial states as an iterator: read input rows into the buffers until they are
 * full (or the input ends), emit what they hold, empty them, and repeat. Memory stays bounded by
 * the buffers whatever the number of rows or groups; the rows emitted are partial sums that a
 * later step adds up (each scan's merge, which also runs as one of these: {@link GroupMerge}).
 * Also the helpers both scans use around it: their output schema ({@link #statesSchema}), running
 * them on each partition ({@link #mapPartitions}) and bringing each group's partial rows together
 * for the merge ({@link #mergeByGroup}).
 */
abstract class BatchedStates implements Iterator<InternalRow> {
  final Iterator<InternalRow> input;
  private boolean emitting;
  private InternalRow next;

  /**
   * The schema of a scan's partial states: {@code input}'s first {@code keyCount} fields, then
   * {@code itemFields}, then nullable long and double fields of the given names.
   */
  static StructType statesSchema(
      StructType input,
      int keyCount,
      List<StructField> itemFields,
      String[] longFields,
      String[] doubleFields) {
    List<StructField> fields = new ArrayList<>();
    for (int k = 0; k < keyCount; k++) {
      fields.add(input.fields()[k]);
    }
    fields.addAll(itemFields);
    for (String name : longFields) {
      fields.add(DataTypes.createStructField(name, DataTypes.LongType, true));
    }
    for (String name : doubleFields) {
      fields.add(DataTypes.createStructField(name, DataTypes.DoubleType, true));
    }
    return DataTypes.createStructType(fields);
  }

  /**
   * {@code perPartition} applied to each partition of {@code rows} (a classic Dataset, as
   * PySpark's {@code _jdf} is), read as Spark's internal rows, as a Dataset of {@code schema}.
   */
  static Dataset<Row> mapPartitions(
      Dataset<Row> rows,
      FlatMapFunction<Iterator<InternalRow>, InternalRow> perPartition,
      StructType schema) {
    org.apache.spark.sql.classic.Dataset<Row> classic =
        (org.apache.spark.sql.classic.Dataset<Row>) rows;
    RDD<InternalRow> input = classic.queryExecution().toRdd();
    RDD<InternalRow> states = input.toJavaRDD().mapPartitions(perPartition).rdd();
    return classic.sparkSession().internalCreateDataFrame(states, schema, false);
  }

  /**
   * {@code merge} applied to {@code partial}'s rows hash-partitioned and sorted by their first
   * {@code keyCount} fields (the group key), so that each group's rows are adjacent in one task:
   * the only exchange of a scan, a row per group and task.
   */
  static Dataset<Row> mergeByGroup(
      Dataset<Row> partial,
      int keyCount,
      FlatMapFunction<Iterator<InternalRow>, InternalRow> merge,
      StructType schema) {
    Column[] keys = new Column[keyCount];
    for (int k = 0; k < keyCount; k++) {
      keys[k] = partial.col(partial.schema().fields()[k].name());
    }
    Dataset<Row> clustered = partial.repartition(keys).sortWithinPartitions(keys);
    return mapPartitions(clustered, merge, schema);
  }

  /**
   * A merge's reading side: its input, partial rows sorted by group key (see {@link
   * #mergeByGroup}), read one group at a time into the subclass's buffer ({@link #add}); the
   * subclass then emits the group ({@link #nextOutput}) and calls {@link #release} when done.
   */
  abstract static class GroupMerge extends BatchedStates {
    final int keyCount;
    private final DataType[] keyTypes;
    private final UnsafeProjection keyOf;
    private InternalRow pending; // the first row of the next group, copied
    private UnsafeRow key; // the held group's key (null: none held)
    Object[] keyValues; // the held group's key values (KeyTable.decode)

    GroupMerge(Iterator<InternalRow> input, DataType[] keyTypes) {
      super(input);
      this.keyCount = keyTypes.length;
      this.keyTypes = keyTypes;
      this.keyOf = UnsafeProjection.create(keyTypes);
    }

    /** Adds one partial row of the held group to the buffer. */
    abstract void add(InternalRow row);

    /** Whether a group is held (read and not yet released). */
    final boolean holdsGroup() {
      return key != null;
    }

    /** Marks the held group emitted (the subclass has emptied its buffer). */
    final void release() {
      key = null;
    }

    @Override
    final boolean holdsNothing() {
      return pending == null && key == null;
    }

    /** Reads the next group's rows: equal keys are adjacent (the input is sorted by key). */
    @Override
    final void readUntilFull() {
      InternalRow first = pending != null ? pending : input.next();
      pending = null;
      key = keyOf.apply(first).copy();
      keyValues = KeyTable.decode(key, keyTypes);
      add(first);
      while (input.hasNext()) {
        InternalRow row = input.next();
        // UnsafeRow equality is byte equality; the projection writes each key alike.
        if (!keyOf.apply(row).equals(key)) {
          pending = row.copy(); // the sorter reuses its row object
          return;
        }
        add(row);
      }
    }
  }

  /**
   * What both scans' per-partition functions hold (shipped to executors; all serializable): the
   * group key types and how their key tables may compare rows ({@code wholeRowFields}, see {@link
   * KeyTable#wholeRowFields}), both from the input schema, and the score bins ({@code edges}, the
   * log-loss clip {@code eps}).
   */
  abstract static class BinnedScan implements FlatMapFunction<Iterator<InternalRow>, InternalRow> {
    private static final long serialVersionUID = 1L;
    final DataType[] keyTypes;
    final int wholeRowFields;
    final BinSearch bins;
    final int binCount;
    final double eps;

    /** For rows of {@code schema} whose first {@code keyCount} fields are the group key. */
    BinnedScan(StructType schema, int keyCount, double[] edges, double eps) {
      this.keyTypes = KeyTable.keyTypesOf(schema, keyCount);
      this.wholeRowFields = KeyTable.wholeRowFields(schema, keyCount);
      this.bins = new BinSearch(edges);
      this.binCount = edges.length;
      this.eps = eps;
    }

    /** A key table for this scan's rows, of up to {@code maxGroups} groups. */
    KeyTable keyTable(int maxGroups) {
      return new KeyTable(keyTypes, maxGroups, wholeRowFields);
    }
  }

  BatchedStates(Iterator<InternalRow> input) {
    this.input = input;
  }

  /** Whether the buffers hold nothing. */
  abstract boolean holdsNothing();

  /** Reads rows into the buffers until they are full or the input ends. */
  abstract void readUntilFull();

  /** The next row of what the buffers hold, or null once all is out (the buffers then empty). */
  abstract InternalRow nextOutput();

  @Override
  public final boolean hasNext() {
    while (next == null) {
      if (!emitting) {
        if (!input.hasNext() && holdsNothing()) {
          return false;
        }
        readUntilFull();
        emitting = true;
      }
      next = nextOutput();
      emitting = next != null;
    }
    return true;
  }

  @Override
  public final InternalRow next() {
    if (!hasNext()) {
      throw new NoSuchElementException();
    }
    InternalRow row = next;
    next = null;
    return row;
  }
}
