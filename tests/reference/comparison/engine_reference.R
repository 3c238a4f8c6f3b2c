# The reference outputs of tests/test_comparison_engine_data.py: R's survival and MatchIt on
# the engine's own analysis data, engine_dataset.csv (gold/comparison_dataset of a run, written
# by make_engine_dataset.py).
# Run from this folder: Rscript engine_reference.R > engine_reference_output.txt
# Every number is written with 17 significant digits (survival_fits.R's num), as reference.R's.
#
# Schemes, as the engine runs them on that table:
#   naive     every patient, weight 1
#   weighted  every patient, the dataset's weight (the study's primary, stabilised ATE weight)
#   matched   the patients with a matched_set, weight 1, clustered on matched_set
suppressPackageStartupMessages(library(MatchIt))
source("survival_fits.R")
cat(R.version.string, "\n")
cat("survival", format(packageVersion("survival")), "MatchIt", format(packageVersion("MatchIt")), "\n")

d <- read.csv("engine_dataset.csv", stringsAsFactors = FALSE)
index_arm <- "paclitaxel_liposome"
d$arm <- factor(d$arm, levels = c("other_taxane", index_arm))  # the comparator is the reference

# The curves at every 30 days and at 1826 (five years as the engine's whole days): the file stays
# small and every one of them lies between observed times, so the step function's lookup is held too.
times <- c(seq(0, 1800, by = 30), 1826)
horizons <- c(730, 1095)  # 24 and 36 months: floor(months * 30.4375)

km_rows <- list(); mean_rows <- list(); cox_rows <- list()
for (endpoint in c("OS", "TTP")) {
  e <- d[d$endpoint == endpoint, ]
  schemes <- list(naive = list(data = e, w = rep(1, nrow(e)), cluster = FALSE),
                  weighted = list(data = e, w = e$weight, cluster = FALSE),
                  matched = list(data = e[!is.na(e$matched_set), ], w = rep(1, sum(!is.na(e$matched_set))),
                                 cluster = TRUE))
  for (scheme in names(schemes)) {
    s <- schemes[[scheme]]
    df <- data.frame(time = s$data$time_days, event = s$data$event, arm = s$data$arm, w = s$w,
                     set = s$data$matched_set)
    fit <- arm_survfit(df, s$cluster)
    at <- summary(fit, times = times)
    # summary's n.risk is weighted; the patients at risk are the unweighted fit's.
    counts <- summary(survfit(Surv(time, event) ~ arm, data = df), times = times)
    stopifnot(identical(counts$time, at$time), identical(as.character(counts$strata), as.character(at$strata)))
    km_rows[[length(km_rows) + 1]] <- data.frame(
      scheme = scheme, endpoint = endpoint, arm = sub("arm=", "", as.character(at$strata)), time = at$time,
      n_risk = counts$n.risk, weighted_n_risk = at$n.risk, surv = at$surv,
      std_err = at$std.err, lower = at$lower, upper = at$upper, logse = fit$logse)
    for (tau in horizons) {
      tab <- summary(fit, rmean = tau)$table
      mean_rows[[length(mean_rows) + 1]] <- data.frame(
        scheme = scheme, endpoint = endpoint, arm = sub("arm=", "", rownames(tab)), tau = tau,
        rmean = tab[, "rmean"], se_rmean = tab[, "se(rmean)"])
    }
    cox_rows[[length(cox_rows) + 1]] <- data.frame(scheme = scheme, endpoint = endpoint, cox_estimates(df, s$cluster))
  }
}
write.csv(numeric_text(do.call(rbind, km_rows)), "engine_km.csv", row.names = FALSE)
write.csv(numeric_text(do.call(rbind, mean_rows)), "engine_rmean.csv", row.names = FALSE)
write.csv(numeric_text(do.call(rbind, cox_rows)), "engine_cox.csv", row.names = FALSE)
print(do.call(rbind, cox_rows)[, c("scheme", "endpoint", "hr", "lower", "upper", "p", "plain_hr")])
print(do.call(rbind, mean_rows))

# The matching, one row per patient (every patient has an OS row) in the patients' order, on the
# logit of the dataset's score. As propensity.R: Debian's MatchIt 4.5.1 compares distances with
# C's int abs(), so the logit is given times 1e8 (the order, the SD caliper and every comparison
# unchanged, whole units 1e-8 of the logit).
p <- d[d$endpoint == "OS", ]
p <- p[order(p$patient_id), ]
rownames(p) <- NULL  # match.matrix names the units by row name: make it their place
p$treated <- as.integer(p$arm == index_arm)
logit <- qlogis(p$propensity_score)
scale <- 1e8
stopifnot(diff(range(logit)) * scale < 2^31)
m <- matchit(treated ~ 1, data = p, method = "nearest", distance = logit * scale, caliper = 0.2, std.caliper = TRUE)
cat("\ncaliper 0.2 SD: caliper on the logit", 0.2 * sd(logit), "\n")
print(summary(m)$nn)
mm <- m$match.matrix[, 1]
matched <- !is.na(mm)
r_pairs <- data.frame(treated_patient = p$patient_id[as.integer(names(mm)[matched])],
                      comparator_patient = p$patient_id[as.integer(mm[matched])])
write.csv(r_pairs, "engine_matches.csv", row.names = FALSE)
# The dataset's own pairs, as sets of patient numbers, beside MatchIt's.
engine_pairs <- split(p$patient_id[!is.na(p$matched_set)], p$matched_set[!is.na(p$matched_set)])
key <- function(a, b) paste(pmin(a, b), pmax(a, b))
engine_keys <- vapply(engine_pairs, function(x) key(x[1], x[2]), "")
r_keys <- key(r_pairs$treated_patient, r_pairs$comparator_patient)
cat("\npairs: MatchIt", length(r_keys), " dataset", length(engine_keys), " in both", length(intersect(r_keys, engine_keys)),
    " same set", setequal(r_keys, engine_keys), "\n")
