print("maclr")
