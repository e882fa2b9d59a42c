def generate(compat, strict):
    return "# placeholder\n"
