"""What is searched, as plain data (torch-free): op names and cell edges, genotypes, cell pictures."""
