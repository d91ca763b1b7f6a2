security {
}
