plugin "echo" {
  replicas = 2
}

model "m" {
}

tenant "T" {
  api_key_env = "DSMIL_OPENAI_API_KEY"
}

plugin {
}
