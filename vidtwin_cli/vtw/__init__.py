"""The .vtw container: header, binary payload, reading and writing."""
