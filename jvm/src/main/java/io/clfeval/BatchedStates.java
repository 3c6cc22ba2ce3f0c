package io.clfeval;

import java.util.Iterator;
import java.util.NoSuchElementException;
import org.apache.spark.sql.catalyst.InternalRow;

/**
 * A partition's partial states as an iterator: read input rows into the buffers until they are
 * full (or the input ends), emit what they hold, empty them, and repeat. Memory stays bounded by
 * the buffers whatever the number of rows or groups; the rows emitted are partial sums that the
 * caller's grouped sum adds up.
 */
abstract class BatchedStates implements Iterator<InternalRow> {
  final Iterator<InternalRow> input;
  private boolean emitting;
  private InternalRow next;

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
