# Django groups Chinese numbers by 10,000 with no separator ("81920"); consoles and bills here read them by thousands.
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
