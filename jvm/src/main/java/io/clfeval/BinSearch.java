package io.clfeval;

import java.io.Serializable;
import java.util.Arrays;

/**
 * bin(s) = #{edges <= s} - 1 for scores in [0, 1], exact, in about one table lookup and one
 * comparison instead of a binary search over all edges (~10 unpredictable branches for 1,000
 * edges: ~45 ns a row, measured).
 *
 * <p>How: for non-negative doubles the raw IEEE bits order like the values, so the top bits
 * (sign, exponent, 8 mantissa bits) cut [edges[1], 1] into buckets of relative width 1/256. The
 * table holds the bin of each bucket's smallest double; a score's bin lies between the entries
 * of its bucket and of the next one, and a binary search over that (usually empty) range
 * finishes it. Scores below edges[1] are bin 0 (edges[0] = 0).
 */
final class BinSearch implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final int SHIFT = 44;

  private final double[] edges;
  private final long firstBucket;
  private final int[] binAtBucketStart;

  /**
   * @param edges strictly increasing, edges[0] = 0, all in [0, 1] ({@link #parseEdges}): the
   *     table then has at most (bits(1.0) >>> 44) + 2 = 261,890 entries
   */
  BinSearch(double[] edges) {
    this.edges = edges.clone();
    firstBucket = Double.doubleToRawLongBits(edges[1]) >>> SHIFT;
    long lastBucket = Double.doubleToRawLongBits(edges[edges.length - 1]) >>> SHIFT;
    int buckets = (int) (lastBucket - firstBucket + 2);
    binAtBucketStart = new int[buckets];
    for (int t = 0; t < buckets; t++) {
      binAtBucketStart[t] = search(Double.longBitsToDouble((firstBucket + t) << SHIFT));
    }
  }

  /** The bin of score {@code p} in [0, 1] (not -0.0, not NaN). */
  int bin(double p) {
    if (p < edges[1]) {
      return 0;
    }
    long bucket = (Double.doubleToRawLongBits(p) >>> SHIFT) - firstBucket;
    if (bucket >= binAtBucketStart.length - 1) {
      return search(p); // above the last edge's bucket: not a score in [0, 1]
    }
    // edges[lo] <= p throughout; the answer is the largest such index up to hi.
    int lo = binAtBucketStart[(int) bucket];
    int hi = binAtBucketStart[(int) bucket + 1];
    while (lo < hi) {
      int mid = (lo + hi + 1) >>> 1;
      if (edges[mid] <= p) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** The same by binary search over all edges. */
  int search(double p) {
    int found = Arrays.binarySearch(edges, p);
    // An exact edge is its own bin's lower edge; otherwise the insertion point's left bin.
    return found >= 0 ? found : -found - 2;
  }

  /**
   * Edges from exact decimal or hexadecimal float texts separated by commas: at least two,
   * strictly increasing, the first 0 and all in [0, 1] (as every clfeval layout).
   */
  static double[] parseEdges(String edgesText) {
    String[] parts = edgesText.split(",");
    double[] edges = new double[parts.length];
    for (int k = 0; k < parts.length; k++) {
      edges[k] = Double.parseDouble(parts[k]);
      if (k > 0 && !(edges[k] > edges[k - 1])) {
        throw new IllegalArgumentException("bin edges must increase strictly at index " + k);
      }
    }
    if (edges.length < 2 || edges[0] != 0.0 || edges[edges.length - 1] > 1.0) {
      throw new IllegalArgumentException("bin edges must start at 0, end in [0, 1], be 2 or more");
    }
    return edges;
  }
}
