# The reference outputs of tests/test_comparison.py and tests/test_comparison_safety.py:
# R's survival and sandwich packages on input.csv (written by make_input.py).
# Run from this folder: Rscript reference.R > reference_output.txt
# Every number is written with 17 significant digits (survival_fits.R's num).
#
# Schemes, as the engine will run them:
#   naive    every patient, weight 1
#   ate      every patient, stabilised ATE IPTW (w_ate)
#   att      every patient, ATT odds weights (w_att)
#   matched  the matched patients, weight 1, clustered on matched_set
suppressPackageStartupMessages(library(sandwich))
source("survival_fits.R")
cat(R.version.string, "\n")
cat("survival", format(packageVersion("survival")), "sandwich", format(packageVersion("sandwich")), "\n")

d <- read.csv("input.csv", stringsAsFactors = FALSE)
d$arm <- factor(d$arm, levels = c("comparator", "index"))
d$matched_set[is.na(d$matched_set)] <- ""

matched <- d[d$matched_set != "", ]
schemes <- list(
  naive = list(data = d, w = rep(1, nrow(d)), cluster = FALSE),
  ate = list(data = d, w = d$w_ate, cluster = FALSE),
  att = list(data = d, w = d$w_att, cluster = FALSE),
  matched = list(data = matched, w = rep(1, nrow(matched)), cluster = TRUE))
endpoints <- c(OS = "os", rwPFS = "pfs")
horizons <- c(730, 1095)  # 24 and 36 months as the engine's whole days: floor(months * 30.4375)

km_rows <- list(); mean_rows <- list(); cox_rows <- list(); safety_rows <- list()
for (scheme in names(schemes)) {
  s <- schemes[[scheme]]
  for (endpoint in names(endpoints)) {
    e <- endpoints[[endpoint]]
    df <- data.frame(time = s$data[[paste0(e, "_time")]], event = s$data[[paste0(e, "_event")]],
                     arm = s$data$arm, w = s$w, set = s$data$matched_set)
    fit <- arm_survfit(df, s$cluster)
    arm <- rep(sub("arm=", "", names(fit$strata)), fit$strata)
    # With weights, survfit's n.risk and n.event are weighted; the patients' counts are the unweighted fit's.
    counts <- survfit(Surv(time, event) ~ arm, data = df)
    km_rows[[length(km_rows) + 1]] <- data.frame(
      scheme = scheme, endpoint = endpoint, arm = arm, time = fit$time, n_risk = counts$n.risk,
      n_event = counts$n.event, weighted_n_risk = fit$n.risk, weighted_n_event = fit$n.event,
      surv = fit$surv, std_err = fit$std.err, logse = fit$logse, lower = fit$lower, upper = fit$upper)
    for (tau in horizons) {
      tab <- summary(fit, rmean = tau)$table
      mean_rows[[length(mean_rows) + 1]] <- data.frame(
        scheme = scheme, endpoint = endpoint, arm = sub("arm=", "", rownames(tab)), tau = tau,
        rmean = tab[, "rmean"], se_rmean = tab[, "se(rmean)"], median = tab[, "median"],
        median_lcl = tab[, "0.95LCL"], median_ucl = tab[, "0.95UCL"])
    }
    cox_rows[[length(cox_rows) + 1]] <- data.frame(scheme = scheme, endpoint = endpoint, cox_estimates(df, s$cluster))
  }
  for (outcome in c("severe_any", "severe_term")) {
    df <- data.frame(y = s$data[[outcome]], arm = s$data$arm, w = s$w, set = s$data$matched_set)
    # HC0 sandwich; for the matched pairs clustered on the pair, without the G / (G - 1) factor,
    # as coxph's clustered variance has none.
    vc <- function(g) if (s$cluster) vcovCL(g, cluster = ~set, type = "HC0", cadjust = FALSE)
                      else vcovHC(g, type = "HC0")
    difference <- glm(y ~ arm, data = df, weights = w, family = gaussian)
    ratio <- suppressWarnings(glm(y ~ arm, data = df, weights = w, family = poisson(link = "log")))
    safety_rows[[length(safety_rows) + 1]] <- data.frame(
      scheme = scheme, outcome = outcome,
      risk_comparator = weighted.mean(df$y[df$arm == "comparator"], df$w[df$arm == "comparator"]),
      risk_index = weighted.mean(df$y[df$arm == "index"], df$w[df$arm == "index"]),
      rd = coef(difference)[2], rd_se = sqrt(vc(difference)[2, 2]),
      log_rr = coef(ratio)[2], log_rr_se = sqrt(vc(ratio)[2, 2]))
  }
}
write.csv(numeric_text(do.call(rbind, km_rows)), "km.csv", row.names = FALSE)
write.csv(numeric_text(do.call(rbind, mean_rows)), "rmean.csv", row.names = FALSE)
write.csv(numeric_text(do.call(rbind, cox_rows)), "cox.csv", row.names = FALSE)
write.csv(numeric_text(do.call(rbind, safety_rows)), "safety.csv", row.names = FALSE)
print(do.call(rbind, cox_rows)[, c("scheme", "endpoint", "hr", "lower", "upper", "plain_hr")])
print(do.call(rbind, mean_rows))
print(do.call(rbind, safety_rows))
