package io.clfeval;

import java.io.Serializable;
import java.util.Arrays;
import org.apache.spark.sql.Encoder;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.expressions.Aggregator;
import org.apache.spark.sql.functions;
import scala.Tuple3;

/**
 * The binary scan's per-group histogram as one Spark aggregate: input (score, y, weight),
 * one buffer per group with an array slot per bin, output the non-empty bins.
 *
 * <p>Why: Spark SQL's hash aggregation keyed by (group, bin) holds ~1,000 keys per group and
 * hashes every group key string per row; keyed by the group alone with an array buffer, the
 * per-row work is one binary search over the edges and seven array additions.
 *
 * <p>Conventions (the same as {@code clfeval.core.bins.BinLayout.bin_index} and
 * {@code clfeval.spark.aggregate.scan_states}):
 *
 * <ul>
 *   <li>bin = #{edges <= score} - 1 (edges strictly increasing, edges[0] = 0), exact: no float
 *       arithmetic on the score.
 *   <li>loss = -log(c) if y = 1 else -log1p(-c), c = score clipped to [eps, 1 - eps].
 *   <li>sums per bin: rows, positives (y), weight * loss, weight * (y - score)^2, weight * score,
 *       weight of positives, weight of negatives.
 *   <li>a NULL score marks a row that is not evaluated (rejected): it adds nothing.
 * </ul>
 */
public final class BinnedStates
    extends Aggregator<Tuple3<Double, Integer, Double>, BinnedStates.Buffer, BinnedStates.Bins> {

  /** Dense per-bin sums of one group (a Java bean so that Spark can serialize it). */
  public static final class Buffer implements Serializable {
    private static final long serialVersionUID = 1L;
    private long[] rows;
    private long[] positives;
    private double[] lossSums;
    private double[] squaredErrorSums;
    private double[] scoreSums;
    private double[] positiveWeights;
    private double[] negativeWeights;

    public Buffer() {}

    Buffer(int bins) {
      rows = new long[bins];
      positives = new long[bins];
      lossSums = new double[bins];
      squaredErrorSums = new double[bins];
      scoreSums = new double[bins];
      positiveWeights = new double[bins];
      negativeWeights = new double[bins];
    }

    public long[] getRows() { return rows; }
    public void setRows(long[] v) { rows = v; }
    public long[] getPositives() { return positives; }
    public void setPositives(long[] v) { positives = v; }
    public double[] getLossSums() { return lossSums; }
    public void setLossSums(double[] v) { lossSums = v; }
    public double[] getSquaredErrorSums() { return squaredErrorSums; }
    public void setSquaredErrorSums(double[] v) { squaredErrorSums = v; }
    public double[] getScoreSums() { return scoreSums; }
    public void setScoreSums(double[] v) { scoreSums = v; }
    public double[] getPositiveWeights() { return positiveWeights; }
    public void setPositiveWeights(double[] v) { positiveWeights = v; }
    public double[] getNegativeWeights() { return negativeWeights; }
    public void setNegativeWeights(double[] v) { negativeWeights = v; }
  }

  /** The non-empty bins of a group, as parallel arrays (bin index first). */
  public static final class Bins implements Serializable {
    private static final long serialVersionUID = 1L;
    private int[] bin;
    private long[] nRows;
    private long[] nPos;
    private double[] lossSum;
    private double[] sqErrSum;
    private double[] scoreSum;
    private double[] wPos;
    private double[] wNeg;

    public Bins() {}

    public int[] getBin() { return bin; }
    public void setBin(int[] v) { bin = v; }
    public long[] getN_rows() { return nRows; }
    public void setN_rows(long[] v) { nRows = v; }
    public long[] getN_pos() { return nPos; }
    public void setN_pos(long[] v) { nPos = v; }
    public double[] getLoss_sum() { return lossSum; }
    public void setLoss_sum(double[] v) { lossSum = v; }
    public double[] getSq_err_sum() { return sqErrSum; }
    public void setSq_err_sum(double[] v) { sqErrSum = v; }
    public double[] getScore_sum() { return scoreSum; }
    public void setScore_sum(double[] v) { scoreSum = v; }
    public double[] getW_pos() { return wPos; }
    public void setW_pos(double[] v) { wPos = v; }
    public double[] getW_neg() { return wNeg; }
    public void setW_neg(double[] v) { wNeg = v; }
  }

  private static final long serialVersionUID = 1L;

  private final double[] edges;
  private final double eps;

  public BinnedStates(double[] edges, double eps) {
    this.edges = edges.clone();
    this.eps = eps;
  }

  @Override
  public Buffer zero() {
    return new Buffer(edges.length);
  }

  @Override
  public Buffer reduce(Buffer b, Tuple3<Double, Integer, Double> row) {
    Double score = row._1();
    if (score == null) {
      return b;
    }
    // + 0.0 turns -0.0 into 0.0: binarySearch orders -0.0 below 0.0, the edges do not.
    double p = score + 0.0;
    int y = row._2();
    double w = row._3();
    int found = Arrays.binarySearch(edges, p);
    // An exact edge is its own bin's lower edge; otherwise the insertion point's left bin.
    int bin = found >= 0 ? found : -found - 2;
    double c = Math.min(Math.max(p, eps), 1.0 - eps);
    double loss = y == 1 ? -StrictMath.log(c) : -StrictMath.log1p(-c);
    double error = y - p;
    b.rows[bin] += 1;
    b.positives[bin] += y;
    b.lossSums[bin] += w * loss;
    b.squaredErrorSums[bin] += w * error * error;
    b.scoreSums[bin] += w * p;
    if (y == 1) {
      b.positiveWeights[bin] += w;
    } else {
      b.negativeWeights[bin] += w;
    }
    return b;
  }

  @Override
  public Buffer merge(Buffer a, Buffer b) {
    for (int k = 0; k < edges.length; k++) {
      a.rows[k] += b.rows[k];
      a.positives[k] += b.positives[k];
      a.lossSums[k] += b.lossSums[k];
      a.squaredErrorSums[k] += b.squaredErrorSums[k];
      a.scoreSums[k] += b.scoreSums[k];
      a.positiveWeights[k] += b.positiveWeights[k];
      a.negativeWeights[k] += b.negativeWeights[k];
    }
    return a;
  }

  @Override
  public Bins finish(Buffer b) {
    int n = 0;
    for (long r : b.rows) {
      if (r > 0) {
        n++;
      }
    }
    Bins out = new Bins();
    out.bin = new int[n];
    out.nRows = new long[n];
    out.nPos = new long[n];
    out.lossSum = new double[n];
    out.sqErrSum = new double[n];
    out.scoreSum = new double[n];
    out.wPos = new double[n];
    out.wNeg = new double[n];
    int j = 0;
    for (int k = 0; k < edges.length; k++) {
      if (b.rows[k] > 0) {
        out.bin[j] = k;
        out.nRows[j] = b.rows[k];
        out.nPos[j] = b.positives[k];
        out.lossSum[j] = b.lossSums[k];
        out.sqErrSum[j] = b.squaredErrorSums[k];
        out.scoreSum[j] = b.scoreSums[k];
        out.wPos[j] = b.positiveWeights[k];
        out.wNeg[j] = b.negativeWeights[k];
        j++;
      }
    }
    return out;
  }

  @Override
  public Encoder<Buffer> bufferEncoder() {
    return Encoders.bean(Buffer.class);
  }

  @Override
  public Encoder<Bins> outputEncoder() {
    return Encoders.bean(Bins.class);
  }

  /**
   * Registers the aggregate under {@code name} in the session's function registry.
   *
   * @param edgesText the bin edges as decimal or hexadecimal float literals separated by commas
   *     (each parses to exactly the double it was printed from)
   * @param eps the log-loss clip
   */
  public static void register(SparkSession spark, String name, String edgesText, double eps) {
    String[] parts = edgesText.split(",");
    double[] edges = new double[parts.length];
    for (int k = 0; k < parts.length; k++) {
      edges[k] = Double.parseDouble(parts[k]);
      if (k > 0 && !(edges[k] > edges[k - 1])) {
        throw new IllegalArgumentException("bin edges must increase strictly at index " + k);
      }
    }
    Encoder<Tuple3<Double, Integer, Double>> input =
        Encoders.tuple(Encoders.DOUBLE(), Encoders.INT(), Encoders.DOUBLE());
    spark.udf().register(name, functions.udaf(new BinnedStates(edges, eps), input));
  }
}
