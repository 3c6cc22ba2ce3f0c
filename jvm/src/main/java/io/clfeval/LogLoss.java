package io.clfeval;

/**
 * The log loss of one row, -log of the probability given to its true class: {@code -log(c)} for
 * a positive, {@code -log(1 - c)} for a negative, c the clipped score (in (0, 1)).
 *
 * <p>Through {@link Math#log}, which HotSpot compiles inline, instead of {@link StrictMath}'s log
 * and log1p, which Java 17 calls as native code, a call per row. The price is the last bits: Math.log is within 1 ulp (its specification) and {@link
 * #negative} within a few ulp, where StrictMath (and so Spark SQL's log and log1p, the fallback
 * path) is fdlibm's; both paths' sums agree to ~1e-15 relative, not bit for bit.
 */
final class LogLoss {
  private LogLoss() {}

  /** -log(c). */
  static double positive(double c) {
    return -Math.log(c);
  }

  /**
   * -log1p(-c), to a few ulp also for small c, where -log(1 - c) would keep only the bits of c
   * that survive the rounding of 1 - c. Here u = 1 - c rounds, but 1 - u is exact (Sterbenz: u
   * lies in [1/2, 1], else c does and u is exact), and -log(u) * c / (1 - u) scales log(u) back
   * to the exact argument, cancelling the rounding to first order (Goldberg, "What every computer
   * scientist should know about floating-point arithmetic", 1991, Theorem 4). Where u rounds to
   * 1, c is below 2^-53 and -log1p(-c) = c to within an ulp.
   */
  static double negative(double c) {
    double u = 1.0 - c;
    return u == 1.0 ? c : -Math.log(u) * c / (1.0 - u);
  }
}
