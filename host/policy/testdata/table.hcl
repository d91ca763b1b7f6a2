# The table test's only policy: which profiles are for development.
policy "dev-profiles" {
  dev_profiles = ["echo"]
}
