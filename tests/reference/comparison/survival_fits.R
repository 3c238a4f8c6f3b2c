# What reference.R and engine_reference.R both fit and write, sourced by them (run from this folder).
suppressPackageStartupMessages(library(survival))

# Every number with 17 significant digits, so the tests can hold the engine to 1e-6 (or tighter) without R.
num <- function(x) sprintf("%.17g", x)
numeric_text <- function(df) { for (col in names(df)) if (is.numeric(df[[col]])) df[[col]] <- num(df[[col]]); df }

# The curve of each arm of df (time, event, arm, w, set). survfit's default variance: the
# infinitesimal jackknife (robust) when a weight is not a whole number or a cluster is given,
# Greenwood's otherwise; std.err is then of S, else of log S (logse).
arm_survfit <- function(df, clustered)
  if (clustered) survfit(Surv(time, event) ~ arm, data = df, weights = w, cluster = set, conf.type = "log-log") else
    survfit(Surv(time, event) ~ arm, data = df, weights = w, conf.type = "log-log")

# The weighted Cox model with its robust variance (clustered on set for matched pairs) and, beside
# it, the plain model without weights: one row.
cox_estimates <- function(df, clustered) {
  cfit <- if (clustered) coxph(Surv(time, event) ~ arm, data = df, weights = w, robust = TRUE, cluster = set)
          else coxph(Surv(time, event) ~ arm, data = df, weights = w, robust = TRUE)
  plain <- coxph(Surv(time, event) ~ arm, data = df)
  ci <- summary(cfit)$conf.int; pci <- summary(plain)$conf.int
  data.frame(
    coef = coef(cfit), robust_se = sqrt(vcov(cfit)[1, 1]),
    naive_var_se = sqrt(cfit$naive.var[1, 1]), hr = ci[1, 1], lower = ci[1, 3], upper = ci[1, 4],
    p = summary(cfit)$coefficients[1, "Pr(>|z|)"], plain_coef = coef(plain), plain_se = sqrt(vcov(plain)[1, 1]),
    plain_hr = pci[1, 1], plain_lower = pci[1, 3], plain_upper = pci[1, 4])
}
