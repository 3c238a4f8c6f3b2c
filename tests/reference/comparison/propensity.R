# The propensity score and 1:1 matching references of tests/test_propensity.py.
# Run from this folder: Rscript propensity.R > propensity_output.txt
# Reads cohort.csv (make_cohort.py); writes r_scores.csv (the scores, their logits and the
# ATE and ATT weights), r_weights.csv (Kish's effective sample size and the largest weight
# per arm) and r_matches.csv (the matched pairs).
suppressMessages(library(MatchIt))
options(width = 150, digits = 15)
cat("R:", R.version.string, " MatchIt:", as.character(packageVersion("MatchIt")), "\n")

d <- read.csv("cohort.csv", na.strings = "", colClasses = c(patient_id = "character", de_novo = "character"))
# Each covariate as the engine's Table 1 reads it: a missing value is the level "unknown".
level <- function(x) factor(ifelse(is.na(x), "unknown", as.character(x)))
d$treated <- as.integer(d$arm == "A")
d$hr_status <- level(d$hr_status)
d$de_novo <- level(ifelse(d$de_novo == "true", "de novo", "recurrent"))
for (v in c("visceral", "brain_mets", "bone_only", "prior_anti_her2")) d[[v]] <- level(ifelse(d[[v]], "yes", "no"))
d$hospital_tier <- level(d$hospital_tier)
d$province <- level(d$province)
d$index_year <- level(d$index_year)

fit <- glm(treated ~ age_at_index + hr_status + de_novo + visceral + brain_mets + bone_only + prior_anti_her2 +
             hospital_tier + province + index_year, family = binomial, data = d)
cat("\nglm: converged", fit$converged, "after", fit$iter, "iterations; deviance", format(deviance(fit), digits = 15), "\n")
print(coef(fit))
e <- fitted(fit)
share <- mean(d$treated)
ate <- ifelse(d$treated == 1, share / e, (1 - share) / (1 - e))  # stabilised
att <- ifelse(d$treated == 1, 1, e / (1 - e))
write.csv(data.frame(patient_id = d$patient_id, score = sprintf("%.17g", e),
                     logit = sprintf("%.17g", fit$linear.predictors), weight_ate = sprintf("%.17g", ate),
                     weight_att = sprintf("%.17g", att)), "r_scores.csv", row.names = FALSE)
kish <- function(w) sum(w)^2 / sum(w^2)
summary <- NULL
for (weights in c("ATE", "ATT")) for (arm in c(1, 0)) {
  w <- if (weights == "ATE") ate[d$treated == arm] else att[d$treated == arm]
  summary <- rbind(summary, data.frame(weights = weights, arm = if (arm == 1) "A" else "B",
                                       effective_sample_size = sprintf("%.17g", kish(w)),
                                       largest_weight = sprintf("%.17g", max(w))))
}
write.csv(summary, "r_weights.csv", row.names = FALSE)

# MatchIt 4.5.1 as Debian builds it compares distances with C's int abs(): |0.4| is 0, so
# a caliper below 1 and the nearer of two sides are read in whole units (the bug MatchIt
# 4.5.3 fixed, "calipers would not work properly on some systems", #163). Shown here:
# a treated unit 0.4 away from the only control left is matched within a caliper of 0.1.
toy <- data.frame(t = c(1, 0, 0, 1), x = c(0.0, 0.5, 0.05, 0.9))
cat("\nint abs() check (unit 4 should stay unmatched):\n")
print(matchit(t ~ 1, data = toy, method = "nearest", distance = toy$x, caliper = 0.1, std.caliper = FALSE)$match.matrix)
# So the logit is given times 1e8: the order of the units, the SD caliper (the SD scales
# with it) and every comparison are unchanged, and whole units are 1e-8 of the logit.
# The largest difference must stay below 2^31 once scaled.
scale <- 1e8
stopifnot(diff(range(fit$linear.predictors)) * scale < 2^31)
matches <- NULL
for (caliper in c(0.2, 0.02)) {
  m <- matchit(treated ~ 1, data = d, method = "nearest", distance = fit$linear.predictors * scale,
               caliper = caliper, std.caliper = TRUE)
  cat("\ncaliper", caliper, "SD: caliper on the logit", caliper * sd(fit$linear.predictors), "\n")
  print(summary(m)$nn)
  mm <- m$match.matrix[, 1]
  matched <- !is.na(mm)
  matches <- rbind(matches, data.frame(caliper_sd = caliper, treated_id = d$patient_id[as.integer(names(mm)[matched])],
                                       comparator_id = d$patient_id[as.integer(mm[matched])]))
}
write.csv(matches, "r_matches.csv", row.names = FALSE)
