def generate(root):
    return {}
